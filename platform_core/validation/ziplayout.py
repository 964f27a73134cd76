"""Where each zip entry belongs: unsafe entries out, junk ignored, files sorted into class folders."""
from __future__ import annotations

import zipfile
from collections import defaultdict
from dataclasses import dataclass, field

from platform_core.config import Limits
from platform_core.validation.report import ValidationReport, summarise_items
from platform_core.validation.zipsafety import display_name, entry_problem, is_junk, name_problem


@dataclass
class Layout:
    """Entries by class folder, and the class folders that hold no file."""

    classes: dict[str, list[zipfile.ZipInfo]] = field(default_factory=lambda: defaultdict(list))
    empty_folders: set[str] = field(default_factory=set)


def sort_entries(infos: list[zipfile.ZipInfo], limits: Limits, report: ValidationReport) -> Layout:
    """Sort entries into class folders; reject unsafe entries and files outside class folders."""
    files: list[tuple[list[str], zipfile.ZipInfo]] = []
    folders: list[list[str]] = []
    for info in infos:
        name = info.filename
        problem = name_problem(info.orig_filename) or entry_problem(info, limits)
        if problem:
            shown = display_name(info.orig_filename)
            report.error("unsafe_entry", f"'{shown}' {problem}.", shown)
            continue
        parts = name.rstrip("/").split("/")
        if is_junk(name):
            if "__MACOSX" not in parts and len(parts) > 1:
                folders.append(parts[:-1])  # a folder holding only .DS_Store is still an (empty) folder
            continue
        if info.is_dir():
            folders.append(parts)
        else:
            files.append((parts, info))
    strip = _common_top_folder([p for p, _ in files])
    layout = Layout()
    at_root, too_deep = [], []
    for parts, info in files:
        parts = parts[strip:]
        if len(parts) == 1:
            at_root.append(display_name(info.filename))
        elif len(parts) > 2:
            too_deep.append(display_name(info.filename))
        else:
            layout.classes[parts[0]].append(info)
    if at_root:
        report.error("file_at_root", f"Files outside any class folder: {summarise_items(at_root)}. "
                     "Put every image inside the folder named after its class.", at_root[0])
    if too_deep:
        report.error("nested_too_deep", f"Folders nested inside class folders: {summarise_items(too_deep)}. "
                     "Use exactly one folder level: class/image.jpg.", too_deep[0])
    for parts in folders:
        parts = parts[strip:]
        if len(parts) == 1 and parts[0] not in layout.classes:
            layout.empty_folders.add(parts[0])
    return layout


def _common_top_folder(paths: list[list[str]]) -> int:
    """1 when every file sits in one top-level folder that holds the class folders, else 0."""
    if not paths or any(len(p) < 2 for p in paths):
        return 0
    tops = {p[0] for p in paths}
    return 1 if len(tops) == 1 and any(len(p) >= 3 for p in paths) else 0
