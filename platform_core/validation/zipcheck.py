"""Validate an image-classification zip: safety first, then layout, then every image, then class rules."""
from __future__ import annotations

import hashlib
import io
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field

from platform_core.config import Limits
from platform_core.validation import images
from platform_core.validation.report import DatasetKind, ValidationReport, plural, summarise_items
from platform_core.validation.zipsafety import (
    ARCHIVE_MAGIC,
    display_name,
    entry_problem,
    is_junk,
    name_problem,
    overlap_problem,
)

_CHUNK = 1 << 16


@dataclass
class _Budget:
    """Real decompressed bytes, counted while reading (declared sizes can lie)."""

    limit: int
    used: int = 0


@dataclass
class _Layout:
    classes: dict[str, list[zipfile.ZipInfo]] = field(default_factory=lambda: defaultdict(list))
    empty_folders: set[str] = field(default_factory=set)


def validate_zip(data: bytes, limits: Limits) -> ValidationReport:
    """Check every rule of SECURITY.md's "Image zip"; on success attach a normalised zip."""
    report = ValidationReport(kind=DatasetKind.IMAGE)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        report.error("bad_zip", f"The file is not a readable zip archive ({str(exc)[:80]}).")
        return report
    if not _archive_ok(zf, infos, data, limits, report):
        return report
    layout = _layout(infos, limits, report)
    kept, seen = _read_images(zf, layout, limits, report)
    _class_rules(layout, kept, limits, report)
    _warn_duplicates(seen, report)
    if report.valid:
        report.normalised = _normalised_zip(kept)
        report.normalised_name = "images.zip"
    return report


def _archive_ok(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], data: bytes, limits: Limits,
                report: ValidationReport) -> bool:
    """Whole-archive caps; failing any stops validation before a byte is decompressed."""
    if len(infos) > limits.max_entries:
        report.error("too_many_entries", f"The zip has {len(infos)} entries; the limit is {limits.max_entries}.")
        return False
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_total_bytes:
        report.error(
            "too_large_uncompressed",
            f"The zip expands to {declared / 1048576:.0f} MB; the limit is {limits.max_total_bytes // 1048576} MB.",
        )
        return False
    problem = overlap_problem(zf, data)
    if problem:
        report.error("overlapping_entries", f"The zip is malformed: {problem}.")
        return False
    return True


def _layout(infos: list[zipfile.ZipInfo], limits: Limits, report: ValidationReport) -> _Layout:
    """Sort entries into class folders; reject unsafe entries and files outside class folders."""
    files: list[tuple[list[str], zipfile.ZipInfo]] = []
    folders: list[list[str]] = []
    for info in infos:
        name = info.filename
        shown = display_name(name)
        problem = name_problem(name) or entry_problem(info, limits)
        if problem:
            report.error("unsafe_entry", f"'{shown}' {problem}.", shown)
            continue
        if is_junk(name):
            continue
        parts = name.rstrip("/").split("/")
        if info.is_dir():
            folders.append(parts)
        else:
            files.append((parts, info))
    strip = _common_top_folder([p for p, _ in files])
    layout = _Layout()
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


def _read_images(zf: zipfile.ZipFile, layout: _Layout, limits: Limits, report: ValidationReport):
    """Decompress with real byte counting, decode every image, collect rejections per reason."""
    budget = _Budget(limits.max_total_bytes)
    kept: dict[str, list[images.DecodedImage]] = defaultdict(list)
    seen: dict[str, list[str]] = defaultdict(list)
    small: list[str] = []
    for cls in sorted(layout.classes):
        for info in sorted(layout.classes[cls], key=lambda i: i.filename):
            shown = display_name(info.filename)
            try:
                raw = _read_bounded(zf, info, limits, budget)
            except _Refused as exc:
                report.error("unsafe_entry", f"'{shown}' {exc}.", shown)
                if budget.used > budget.limit:
                    return kept, seen
                continue
            if raw.startswith(ARCHIVE_MAGIC):
                report.error("nested_archive", f"'{shown}' is an archive inside the archive.", shown)
                continue
            try:
                decoded = images.decode_and_normalise(raw, limits.max_image_pixels)
            except images.ImageRejected as exc:
                report.error("bad_image", f"'{shown}' {exc}.", shown)
                continue
            kept[cls].append(decoded)
            seen[hashlib.sha256(raw).hexdigest()].append(shown)
            if min(decoded.width, decoded.height) < limits.min_image_side_warning:
                small.append(shown)
    if small:
        total = sum(len(v) for v in kept.values())
        which = f"All {total} images are" if len(small) == total else f"{plural(len(small), 'image')} ({summarise_items(small, 3)}) are"
        report.warn("small_images", f"{which} smaller than {limits.min_image_side_warning} px on a side; "
                    "they will be upscaled for training.")
    return kept, seen


class _Refused(Exception):
    pass


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits, budget: _Budget) -> bytes:
    out = bytearray()
    try:
        with zf.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                out += chunk
                budget.used += len(chunk)
                if len(out) > limits.max_entry_bytes:
                    raise _Refused(f"expands beyond {limits.max_entry_bytes // 1048576} MB")
                if budget.used > budget.limit:
                    raise _Refused(f"takes the archive beyond {limits.max_total_bytes // 1048576} MB uncompressed")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise _Refused(f"is damaged ({str(exc)[:80]})") from None
    return bytes(out)


def _class_rules(layout: _Layout, kept: dict, limits: Limits, report: ValidationReport) -> None:
    report.classes = {cls: len(kept.get(cls, [])) for cls in sorted(layout.classes)}
    for folder in sorted(layout.empty_folders):
        report.classes[folder] = 0
        report.error("empty_class", f"Class folder '{display_name(folder)}' is empty.", folder)
    for cls in layout.classes:
        if len(cls) > 64:
            report.error("class_name", f"Class folder name '{display_name(cls)[:64]}...' is longer than 64 characters.")
    lowered = defaultdict(list)
    for cls in report.classes:
        lowered[cls.lower()].append(cls)
    for names in lowered.values():
        if len(names) > 1:
            report.error("class_name", f"Class folders {', '.join(sorted(names))} differ only in letter case; merge them.")
    n = len(report.classes)
    if not (limits.min_image_classes <= n <= limits.max_image_classes):
        report.error("class_count", f"Found {n} class folder(s); an image dataset needs "
                     f"{limits.min_image_classes} to {limits.max_image_classes}.")
    for cls, count in report.classes.items():
        if count and not (limits.min_images_per_class <= count <= limits.max_images_per_class):
            report.error("class_size", f"Class '{display_name(cls)}' has {count} usable image(s); each class needs "
                         f"{limits.min_images_per_class} to {limits.max_images_per_class}.", cls)
    counts = [c for c in report.classes.values() if c]
    if len(counts) >= 2 and max(counts) > limits.max_imbalance * min(counts):
        report.warn("imbalance", f"Classes are imbalanced ({max(counts)} vs {min(counts)} images); "
                    "accuracy on the small class may suffer.")


def _warn_duplicates(seen: dict[str, list[str]], report: ValidationReport) -> None:
    groups = [names for names in seen.values() if len(names) > 1]
    if groups:
        shown = summarise_items([" = ".join(g[:3]) for g in groups], 4)
        report.warn("duplicate_files", f"{len(groups)} group(s) of identical images: {shown}.")


def _normalised_zip(kept: dict[str, list[images.DecodedImage]]) -> bytes:
    """The stored form: our own names, one folder per class, re-encoded images."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for cls in sorted(kept):
            for index, img in enumerate(kept[cls], start=1):
                zf.writestr(f"{cls}/{index:04d}.{img.extension}", img.data)
    return out.getvalue()
