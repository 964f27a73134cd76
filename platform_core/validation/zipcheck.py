"""Validate an image-classification zip: safety first, then layout, then every image, then class rules."""
from __future__ import annotations

import io
import struct
import unicodedata
import zipfile
from collections import defaultdict

from platform_core.config import Limits
from platform_core.validation.budget import WorkBudget
from platform_core.validation.report import DatasetKind, ValidationReport, plural, size_text, summarise_items
from platform_core.validation.similarity import warn_look_alikes
from platform_core.validation.zipimages import Images, read_images
from platform_core.validation.ziplayout import Layout, sort_entries
from platform_core.validation.zipsafety import display_name, entry_count_bound, overlap_problem

def validate_zip(data: bytes, limits: Limits, work: WorkBudget | None = None) -> ValidationReport:
    """Check every image zip rule (README "Datasets"; hostile input included) within the work budget; on success
    attach a normalised zip."""
    report = ValidationReport(kind=DatasetKind.IMAGE)
    bound = entry_count_bound(data)
    if bound > limits.max_entries:
        # Refused before zipfile parses the directory: a million entries cost hundreds of MB.
        report.error("too_many_entries", f"The zip has {bound} entries; the limit is {limits.max_entries}.")
        return report
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error) as exc:
        report.error("bad_zip", f"The file is not a readable zip archive ({str(exc)[:80]}).")
        return report
    if not _archive_ok(zf, infos, data, limits, report):
        return report
    layout = sort_entries(infos, limits, report)
    found = read_images(zf, layout, limits, work or WorkBudget(), report)
    if found is None:
        return report  # checking stopped part-way: counts per class would only mislead
    _warn_small(found, report, limits)
    _class_rules(layout, found, limits, report)
    _warn_duplicates(found.seen, report)
    warn_look_alikes(found.pictures, report)
    if report.valid:
        report.normalised = found.stored()
        report.normalised_name = "images.zip"
    return report


def _archive_ok(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], data: bytes, limits: Limits,
                report: ValidationReport) -> bool:
    """Whole-archive caps; failing any stops validation before a byte is decompressed.

    The entry count was capped before parsing (validate_zip); sizes here are declared, and
    read_bounded counts the real bytes again while decompressing.
    """
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_total_bytes:
        largest = sorted(infos, key=lambda i: (-i.file_size, i.filename))[:3]
        named = summarise_items([f"{display_name(i.filename)} ({size_text(i.file_size)})" for i in largest], 3)
        report.error(
            "too_large_uncompressed",
            f"The zip expands to {size_text(declared)}; the limit is {size_text(limits.max_total_bytes)}. "
            f"The largest files: {named}. Send fewer or smaller images.",
            display_name(largest[0].filename),
        )
        return False
    problem = overlap_problem(zf, data)
    if problem:
        report.error("overlapping_entries", f"The zip is malformed: {problem}.")
        return False
    return True


def _class_rules(layout: Layout, found: Images, limits: Limits, report: ValidationReport) -> None:
    """2..10 classes of 10..100 images, none empty, names distinct; every breach reported."""
    usable = {cls: found.usable.get(cls, 0) for cls in sorted(layout.classes)}
    report.classes = {cls: n + found.unchecked.get(cls, 0) for cls, n in usable.items()}
    for folder in sorted(layout.empty_folders):
        report.classes[folder] = 0
        report.error("empty_class", f"Class folder '{display_name(folder)}' is empty.", folder)
    for cls in layout.classes:
        if len(cls) > 64:
            report.error("class_name", f"Class folder name '{display_name(cls)[:64]}...' is longer than 64 characters.")
    lowered = defaultdict(list)
    for cls in report.classes:
        lowered[unicodedata.normalize("NFC", cls).casefold()].append(cls)
    for names in lowered.values():
        if len(names) > 1:
            shown = ", ".join(display_name(n) for n in sorted(names))
            report.error("class_name", f"Class folders {shown} differ only in letter case "
                         "or in how accents are encoded; merge them.")
    n = len(report.classes)
    if not (limits.min_image_classes <= n <= limits.max_image_classes):
        report.error("class_count", f"Found {plural(n, 'class folder')}; an image dataset needs "
                     f"{limits.min_image_classes} to {limits.max_image_classes}.")
    for cls, count in report.classes.items():
        if count and not (limits.min_images_per_class <= count <= limits.max_images_per_class):
            how_many = _how_many(usable.get(cls, 0), count, limits)
            report.error("class_size", f"Class '{display_name(cls)}' has {how_many}; "
                         f"each class needs {limits.min_images_per_class} to {limits.max_images_per_class}.", cls)
    counts = [c for c in report.classes.values() if c]
    if len(counts) >= 2 and max(counts) > limits.max_imbalance * min(counts):
        report.warn("imbalance", f"Classes are imbalanced ({max(counts)} vs {min(counts)} images); "
                    "accuracy on the small class may suffer.")


def _how_many(usable: int, files: int, limits: Limits) -> str:
    """'12 usable images' when every image was decoded; otherwise what is known without decoding the rest."""
    if usable == files:
        return plural(usable, "usable image")
    if usable > limits.max_images_per_class:
        return f"more than {limits.max_images_per_class} usable images ({plural(files, 'image file')})"
    return plural(files, "image file")


def _warn_small(found: Images, report: ValidationReport, limits: Limits) -> None:
    if found.small:
        total = sum(found.usable.values())
        which = (f"All {total} images are" if len(found.small) == total
                 else f"{plural(len(found.small), 'image')} ({summarise_items(found.small, 3)}) are")
        report.warn("small_images", f"{which} smaller than {limits.min_image_side_warning} px on a side; "
                    "they will be upscaled for training.")


def _warn_duplicates(seen: dict[str, list[str]], report: ValidationReport) -> None:
    groups = [names for names in seen.values() if len(names) > 1]
    if groups:
        shown = summarise_items([" = ".join(g[:3]) for g in groups], 4)
        report.warn("duplicate_files", f"{plural(len(groups), 'group')} of identical images: {shown}.")
