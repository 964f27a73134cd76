"""Validate an image-classification zip: safety first, then layout, then every image, then class rules."""
from __future__ import annotations

import hashlib
import io
import struct
import unicodedata
import zipfile
from collections import defaultdict

from platform_core.config import Limits
from platform_core.validation import images
from platform_core.validation.similarity import Picture, warn_look_alikes
from platform_core.validation.report import DatasetKind, ValidationReport, plural, size_text, summarise_items
from platform_core.validation.ziplayout import Layout, sort_entries
from platform_core.validation.zipsafety import (
    ARCHIVE_MAGIC,
    Budget,
    EntryRefused,
    display_name,
    entry_count_bound,
    overlap_problem,
    read_bounded,
)

_Images = dict[str, list[images.DecodedImage]]


def validate_zip(data: bytes, limits: Limits) -> ValidationReport:
    """Check every image zip rule (README "Datasets"; hostile input included); on success attach a normalised zip."""
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
    budget = Budget(limits.max_total_bytes)
    kept, seen, pictures = _read_images(zf, layout, budget, limits, report)
    if budget.used > budget.limit:
        return report  # reading stopped part-way: counts per class would only mislead
    _class_rules(layout, kept, limits, report)
    _warn_duplicates(seen, report)
    warn_look_alikes(pictures, report)
    if report.valid:
        report.normalised = _normalised_zip(kept)
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
        report.error(
            "too_large_uncompressed",
            f"The zip expands to {size_text(declared)}; the limit is {size_text(limits.max_total_bytes)}.",
        )
        return False
    problem = overlap_problem(zf, data)
    if problem:
        report.error("overlapping_entries", f"The zip is malformed: {problem}.")
        return False
    return True


def _read_images(zf: zipfile.ZipFile, layout: Layout, budget: Budget, limits: Limits,
                 report: ValidationReport) -> tuple[_Images, dict[str, list[str]], list[Picture]]:
    """Decompress with real byte counting, decode every image, collect rejections per reason."""
    kept: _Images = defaultdict(list)
    seen: dict[str, list[str]] = defaultdict(list)
    pictures: list[Picture] = []
    small: list[str] = []
    for cls in sorted(layout.classes):
        for info in sorted(layout.classes[cls], key=lambda i: i.filename):
            shown = display_name(info.filename)
            try:
                raw = read_bounded(zf, info, limits, budget)
            except EntryRefused as exc:
                report.error("unsafe_entry", f"'{shown}' {exc}.", shown)
                if budget.used > budget.limit:
                    return kept, seen, pictures
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
            digest = hashlib.sha256(raw).hexdigest()
            seen[digest].append(shown)
            pictures.append((cls, shown, decoded.dhash, digest, decoded.thumb))
            if min(decoded.width, decoded.height) < limits.min_image_side_warning:
                small.append(shown)
    if small:
        total = sum(len(v) for v in kept.values())
        which = (f"All {total} images are" if len(small) == total
                 else f"{plural(len(small), 'image')} ({summarise_items(small, 3)}) are")
        report.warn("small_images", f"{which} smaller than {limits.min_image_side_warning} px on a side; "
                    "they will be upscaled for training.")
    return kept, seen, pictures


def _class_rules(layout: Layout, kept: _Images, limits: Limits, report: ValidationReport) -> None:
    """2..10 classes of 10..100 images, none empty, names distinct; every breach reported."""
    report.classes = {cls: len(kept.get(cls, [])) for cls in sorted(layout.classes)}
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
            report.error("class_size", f"Class '{display_name(cls)}' has {plural(count, 'usable image')}; "
                         f"each class needs {limits.min_images_per_class} to {limits.max_images_per_class}.", cls)
    counts = [c for c in report.classes.values() if c]
    if len(counts) >= 2 and max(counts) > limits.max_imbalance * min(counts):
        report.warn("imbalance", f"Classes are imbalanced ({max(counts)} vs {min(counts)} images); "
                    "accuracy on the small class may suffer.")


def _warn_duplicates(seen: dict[str, list[str]], report: ValidationReport) -> None:
    groups = [names for names in seen.values() if len(names) > 1]
    if groups:
        shown = summarise_items([" = ".join(g[:3]) for g in groups], 4)
        report.warn("duplicate_files", f"{plural(len(groups), 'group')} of identical images: {shown}.")


def _normalised_zip(kept: _Images) -> bytes:
    """The stored form: our own names, one folder per class, re-encoded images."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for cls in sorted(kept):
            for index, img in enumerate(kept[cls], start=1):
                zf.writestr(f"{cls}/{index:04d}.{img.extension}", img.data)
    return out.getvalue()
