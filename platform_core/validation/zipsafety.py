"""Archive-level safety checks on a zip's directory, before any entry is decompressed."""
from __future__ import annotations

import re
import stat
import struct
import unicodedata
import zipfile

from platform_core.config import Limits

_DRIVE = re.compile(r"^[A-Za-z]:")
_ARCHIVE_EXT = (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar", ".bz2", ".xz", ".jar", ".whl", ".zst")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", ".localized", "icon\r"}


def display_name(name: str) -> str:
    """An entry name safe to echo: control and format characters shown as escapes."""
    return "".join(c if unicodedata.category(c) not in ("Cc", "Cf") else f"\\u{ord(c):04x}" for c in name)[:120]


def name_problem(name: str) -> str | None:
    """Why an entry name is refused (we reject, never sanitise), or None."""
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        return "contains control or text-direction characters"
    parts = name.rstrip("/").split("/")
    if any(p == ".." for p in parts):
        return "contains a '..' component"
    if any(p in ("", ".") for p in parts):
        return "contains an empty or '.' path component"
    return None


def entry_problem(info: zipfile.ZipInfo, limits: Limits) -> str | None:
    """Why an entry itself is refused: links, encryption, odd compression, nesting, size."""
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"uses compression method {info.compress_type} (only stored or deflate are accepted)"
    if info.filename.lower().endswith(_ARCHIVE_EXT):
        return "is an archive inside the archive"
    if info.file_size > limits.max_entry_bytes:
        return f"expands to {info.file_size / 1048576:.0f} MB (limit {limits.max_entry_bytes // 1048576} MB per file)"
    if info.file_size > limits.max_compression_ratio * max(info.compress_size, 1) and info.file_size > 1_000_000:
        return f"compresses {info.file_size // max(info.compress_size, 1)}:1, which only a zip bomb does"
    return None


def is_junk(name: str) -> bool:
    """Files that operating systems add to archives; ignored, not reported."""
    parts = name.rstrip("/").split("/")
    base = parts[-1].lower()
    return "__MACOSX" in parts or base in _JUNK_NAMES or base.startswith("._")


def overlap_problem(zf: zipfile.ZipFile, raw: bytes) -> str | None:
    """Detect entries whose data overlap (a non-recursive zip bomb) or point outside the file."""
    spans: list[tuple[int, int, str]] = []
    for info in zf.infolist():
        off = info.header_offset
        if off < 0 or off + 30 > len(raw) or raw[off:off + 4] != b"PK\x03\x04":
            return f"entry '{display_name(info.filename)}' has no valid local header"
        name_len, extra_len = struct.unpack("<HH", raw[off + 26:off + 30])
        end = off + 30 + name_len + extra_len + info.compress_size
        if end > len(raw):
            return f"entry '{display_name(info.filename)}' runs past the end of the file"
        spans.append((off, end, info.filename))
    spans.sort()
    for (start_a, end_a, name_a), (start_b, _, name_b) in zip(spans, spans[1:]):
        if start_b < end_a:
            return f"entries '{display_name(name_a)}' and '{display_name(name_b)}' overlap"
    start_dir = getattr(zf, "start_dir", None)
    if spans and start_dir is not None and spans[-1][1] > start_dir:
        return "entry data overlaps the zip's directory"
    return None
