"""Zip safety: checks on names and the directory before decompressing, and reading with real byte counts."""
from __future__ import annotations

import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass

from platform_core.config import Limits
from platform_core.validation.report import size_text

_DRIVE = re.compile(r"^[A-Za-z]:")
_ARCHIVE_EXT = (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar", ".bz2", ".xz", ".jar", ".whl", ".zst")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", ".localized", "icon\r"}
# Control, format (bidi overrides, zero-width) and line/paragraph separators: all can disguise a name.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp")
_CENTRAL_SIGNATURE = b"PK\x01\x02"
# Small entries may compress extremely well (a blank PNG row); only large ones are held to the ratio.
RATIO_FLOOR = 1_000_000


def display_name(name: str) -> str:
    """An entry name safe to echo: control and format characters shown as escapes."""
    return "".join(c if unicodedata.category(c) not in _HIDDEN else f"\\u{ord(c):04x}" for c in name)[:120]


def name_problem(name: str) -> str | None:
    """Why an entry name is refused (we reject, never sanitise), or None.

    Pass ``ZipInfo.orig_filename``: ``filename`` has already been cut at the first NUL byte.
    """
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if any(unicodedata.category(c) in _HIDDEN for c in name):
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
        return f"expands to {size_text(info.file_size)} (limit {size_text(limits.max_entry_bytes)} per file)"
    return ratio_problem(info.file_size, info.compress_size, limits)


def ratio_problem(expanded: int, compressed: int, limits: Limits) -> str | None:
    """Why ``expanded`` bytes from ``compressed`` is a bomb's ratio, or None."""
    if expanded > RATIO_FLOOR and expanded > limits.max_compression_ratio * max(compressed, 1):
        return f"compresses {expanded // max(compressed, 1)}:1, which only a zip bomb does"
    return None


def entry_count_bound(raw: bytes) -> int:
    """An upper bound on the entries ``zipfile`` would parse, found without parsing them.

    Each directory entry starts with its signature, so counting signatures bounds the count; it
    lets us refuse a million-entry directory before ``zipfile`` builds a million objects.
    """
    return raw.count(_CENTRAL_SIGNATURE)


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


@dataclass
class Budget:
    """Real decompressed bytes, counted while reading (declared sizes can lie)."""

    limit: int
    used: int = 0


class EntryRefused(Exception):
    """An entry could not be read within the caps; the message completes "'name' ..."."""


_CHUNK = 1 << 16
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
                RuntimeError, struct.error)


def read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits, budget: Budget) -> bytes:
    """Decompress one entry, stopping as soon as real bytes pass a per-entry, total or ratio cap."""
    out = bytearray()
    try:
        with zf.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                out += chunk
                budget.used += len(chunk)
                if len(out) > limits.max_entry_bytes:
                    raise EntryRefused(f"expands beyond {size_text(limits.max_entry_bytes)}")
                if budget.used > budget.limit:
                    raise EntryRefused(f"takes the archive beyond {size_text(budget.limit)} uncompressed")
                ratio = ratio_problem(len(out), info.compress_size, limits)
                if ratio:
                    raise EntryRefused(ratio)
    except _READ_ERRORS:
        raise EntryRefused("is damaged and cannot be decompressed") from None
    return bytes(out)
