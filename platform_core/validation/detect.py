"""Entry point: tell a zip from a CSV by content, cap the size, then run the right validator."""
from __future__ import annotations

from pathlib import Path

from platform_core.config import Limits
from platform_core.validation.budget import WorkBudget
from platform_core.validation.csvcheck import validate_csv
from platform_core.validation.report import DatasetKind, ValidationReport, over_limit
from platform_core.validation.zipcheck import validate_zip

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_OTHER_BINARY = {
    b"\x1f\x8b": "a gzip or tar.gz archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a single PNG image",
    b"\xff\xd8\xff": "a single JPEG image",
    b"GIF8": "a GIF image",
    b"BZh": "a bzip2 archive",
    b"\xfd7zXZ": "an xz archive",
}
_HINT = "Send a .zip with one folder of images per class, or a CSV of text,label rows."
_SHRINK = {
    DatasetKind.IMAGE: "Send fewer or smaller images.",
    DatasetKind.SENTIMENT: "Send fewer rows or shorter texts.",
    DatasetKind.UNKNOWN: "Send a smaller file.",
}


def validate_dataset(source: bytes | Path, filename: str, limits: Limits,
                     work: WorkBudget | None = None) -> ValidationReport:
    """Validate an upload given as bytes or a path; never raises for bad content; ``work`` bounds its cost."""
    if isinstance(source, Path):
        size = source.stat().st_size
        cap = limits.max_upload_bytes
        if size > cap:
            # Refuse before reading a byte: the file may be gigabytes.
            return _too_large(size, cap, filename)
        source = source.read_bytes()
    data = source
    if not data:
        report = ValidationReport()
        report.error("empty_file", f"'{filename}' is empty. {_HINT}", filename)
        return report
    head = data[:16]
    if head.startswith(_ZIP_MAGIC):
        if len(data) > limits.max_archive_bytes:
            return _too_large(len(data), limits.max_archive_bytes, filename, DatasetKind.IMAGE)
        return validate_zip(data, limits, work)
    kind_found = _binary_kind(head)
    if kind_found:
        report = ValidationReport()
        report.error("unsupported_file", f"'{filename}' is {kind_found}, not a dataset. {_HINT}", filename)
        return report
    if _looks_like_html(data):
        report = ValidationReport()
        report.error(
            "html_page",
            f"'{filename}' is a web page, not a dataset (a download that returned a login page?). {_HINT}",
            filename,
        )
        return report
    if filename.lower().endswith(".zip"):
        report = ValidationReport(kind=DatasetKind.IMAGE)
        report.error("bad_zip", f"'{filename}' is named .zip but is not a zip archive (damaged, or renamed?). "
                     f"{_HINT}", filename)
        return report
    if len(data) > limits.max_csv_bytes:
        return _too_large(len(data), limits.max_csv_bytes, filename, DatasetKind.SENTIMENT)
    return validate_csv(data, limits)


def _binary_kind(head: bytes) -> str | None:
    for magic, what in _OTHER_BINARY.items():
        if head.startswith(magic):
            return what
    return None


def _looks_like_html(data: bytes) -> bool:
    start = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _too_large(size: int, cap: int, filename: str, kind: DatasetKind = DatasetKind.UNKNOWN) -> ValidationReport:
    report = ValidationReport(kind=kind)
    report.error("file_too_large", f"'{filename}' is {over_limit(size, cap)}. {_SHRINK[kind]}", filename)
    return report
