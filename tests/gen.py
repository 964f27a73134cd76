"""Generators of hostile and ordinary uploads for the validation tests.

Images are small, seeded and all different (no accidental duplicates). Zips come from ``zipfile``
when the format allows it and from :func:`raw_zip` (hand-built with ``struct``) when the test needs
bytes that ``zipfile`` refuses to write: lying sizes, NUL bytes in names, encrypted flags,
overlapping entries. CSV builders return bytes in the requested encoding.
"""
from __future__ import annotations

import codecs
import csv
import io
import random
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

MiB = 1024 * 1024
GiB = 1024 * MiB
_TIME = (2024, 5, 17, 9, 30, 0)

# ---------------------------------------------------------------- images


def picture(seed: int, size: tuple[int, int] = (40, 40), mode: str = "RGB") -> Image.Image:
    """A seeded picture: blocks of colour plus noise, so every seed gives different pixels."""
    rng = np.random.default_rng(seed)
    w, h = size
    blocks = rng.integers(0, 256, size=(max(h // 8, 1), max(w // 8, 1), 3), dtype=np.uint8)
    base = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]
    base = np.pad(base, ((0, h - base.shape[0]), (0, w - base.shape[1]), (0, 0)), mode="edge")
    noise = rng.integers(0, 24, size=(h, w, 3), dtype=np.uint8)
    img = Image.fromarray(base ^ noise, "RGB")
    return img if mode == "RGB" else img.convert(mode)


def image_bytes(seed: int = 0, fmt: str = "PNG", size: tuple[int, int] = (40, 40), mode: str = "RGB",
                **save: object) -> bytes:
    """A picture encoded as ``fmt`` (PNG, JPEG, GIF, BMP, WEBP...)."""
    out = io.BytesIO()
    picture(seed, size, mode).save(out, format=fmt, **save)
    return out.getvalue()


def png(seed: int = 0, size: tuple[int, int] = (40, 40)) -> bytes:
    return image_bytes(seed, "PNG", size)


def jpeg(seed: int = 0, size: tuple[int, int] = (40, 40), **save: object) -> bytes:
    return image_bytes(seed, "JPEG", size, quality=90, **save)


def jpeg_with_metadata(seed: int = 0) -> bytes:
    """A JPEG carrying EXIF (camera, GPS, rotation) and a comment that must not be stored."""
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"          # Make
    exif[0x0110] = "Model X"         # Model
    exif[0x0112] = 6                 # Orientation: rotate 90 CW to display
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS IFD
    return jpeg(seed, (48, 32), exif=exif, comment=b"home address: 1 Secret Lane")


def png_with_metadata(seed: int = 0) -> bytes:
    """A PNG with a text chunk and EXIF that must not be stored."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "someone private")
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    return image_bytes(seed, "PNG", (40, 40), pnginfo=info, exif=exif)


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    """The first ``keep`` fraction of a file: headers intact, body cut short."""
    return data[: int(len(data) * keep)]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


# ---------------------------------------------------------------- zips via zipfile


def zip_info(name: str, *, compress_type: int = zipfile.ZIP_DEFLATED, symlink: bool = False,
             mode: int = 0o644) -> zipfile.ZipInfo:
    """A ZipInfo with a fixed date; ``symlink`` sets a Unix S_IFLNK mode in external_attr."""
    info = zipfile.ZipInfo(name, date_time=_TIME)
    info.compress_type = compress_type
    info.create_system = 3
    info.external_attr = ((stat.S_IFLNK | 0o777) if symlink else (stat.S_IFREG | mode)) << 16
    return info


def make_zip(entries: Iterable[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    """A zip of (name or ZipInfo, content); names ending in '/' become folders."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries:
            info = name if isinstance(name, zipfile.ZipInfo) else zip_info(name)
            if info.filename.endswith("/"):
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
            zf.writestr(info, content)
    return out.getvalue()


def image_entries(classes: dict[str, int], *, top: str | None = None, fmt: str = "PNG",
                  size: tuple[int, int] = (40, 40), seed: int = 0) -> list[tuple[str, bytes]]:
    """Entries ``[top/]class/img_000.png`` with distinct pictures."""
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    prefix = f"{top}/" if top else ""
    entries, n = [], seed
    for cls, count in classes.items():
        for i in range(count):
            entries.append((f"{prefix}{cls}/img_{i:03d}.{ext}", image_bytes(n, fmt, size)))
            n += 1
    return entries


def image_zip(classes: dict[str, int], *, top: str | None = None, fmt: str = "PNG",
              size: tuple[int, int] = (40, 40), extra: Sequence[tuple[str | zipfile.ZipInfo, bytes]] = (),
              dirs: Sequence[str] = (), seed: int = 0) -> bytes:
    """An image-classification zip: one folder per class, plus ``extra`` entries and empty ``dirs``."""
    entries: list[tuple[str | zipfile.ZipInfo, bytes]] = [(d.rstrip("/") + "/", b"") for d in dirs]
    entries += image_entries(classes, top=top, fmt=fmt, size=size, seed=seed)
    entries += list(extra)
    return make_zip(entries)


def valid_zip(**kw: object) -> bytes:
    """A zip that passes every default rule: two classes of ten 40 px PNGs."""
    return image_zip({"cat": 10, "dog": 10}, **kw)  # type: ignore[arg-type]


def deflate_bomb_zip(size: int = GiB, name: str = "cat/bomb.png") -> bytes:
    """A zip holding one deflated entry of ``size`` zero bytes, written in 1 MiB chunks."""
    out = io.BytesIO()
    chunk = bytes(MiB)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(name, "w", force_zip64=True) as stream:
            for _ in range(size // MiB):
                stream.write(chunk)
    return out.getvalue()


# ---------------------------------------------------------------- zips by hand


@dataclass
class RawEntry:
    """One entry of a hand-built zip; every field the central directory declares can be set."""

    name: str | bytes
    content: bytes = b""
    method: int = zipfile.ZIP_STORED
    data: bytes | None = None          # bytes on disk; default: content stored or deflated
    flags: int = 0
    external_attr: int = (stat.S_IFREG | 0o644) << 16
    crc: int | None = None
    file_size: int | None = None       # declared uncompressed size; default len(content)
    compress_size: int | None = None   # declared compressed size; default len(data)

    def __post_init__(self) -> None:
        if self.data is None:  # compress once: headers and body all need it
            self.data = deflate_raw([self.content]) if self.method == zipfile.ZIP_DEFLATED else self.content

    def encoded_name(self) -> bytes:
        if isinstance(self.name, bytes):
            return self.name
        return self.name.encode("utf-8")

    def disk_data(self) -> bytes:
        assert self.data is not None
        return self.data

    def header_fields(self) -> tuple[int, int, int, int, int]:
        """(flags, method, crc, compress_size, file_size) as declared."""
        flags = self.flags
        if isinstance(self.name, str) and not self.name.isascii():
            flags |= 0x800
        crc = zlib.crc32(self.content) if self.crc is None else self.crc
        csize = len(self.disk_data()) if self.compress_size is None else self.compress_size
        fsize = len(self.content) if self.file_size is None else self.file_size
        return flags, self.method, crc, csize, fsize


def deflate_raw(chunks: Iterable[bytes], level: int = 9) -> bytes:
    """A raw deflate stream (no zlib header), as zip stores it."""
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    return b"".join(comp.compress(c) for c in chunks) + comp.flush()


def _local_header(e: RawEntry) -> bytes:
    flags, method, crc, csize, fsize = e.header_fields()
    name = e.encoded_name()
    return struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, csize, fsize,
                       len(name), 0) + name


def _central_header(e: RawEntry, offset: int) -> bytes:
    flags, method, crc, csize, fsize = e.header_fields()
    name = e.encoded_name()
    return struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 0x031E, 20, flags, method, 0, 0x21, crc, csize,
                       fsize, len(name), 0, 0, 0, 0, e.external_attr, offset) + name


def raw_zip(entries: Sequence[RawEntry], central: Sequence[tuple[int, RawEntry]] | None = None) -> bytes:
    """Local records for ``entries``; a central directory of (local index, entry) pairs.

    By default each entry is listed once against its own local record; passing ``central`` lets a
    test point several directory entries at the same local data, or declare different sizes.
    """
    body, offsets = bytearray(), []
    for e in entries:
        offsets.append(len(body))
        body += _local_header(e) + e.disk_data()
    pairs = central if central is not None else list(enumerate(entries))
    cd = b"".join(_central_header(e, offsets[i]) for i, e in pairs)
    eocd = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(pairs), len(pairs), len(cd), len(body), 0)
    return bytes(body) + cd + eocd


def overlapping_zip(copies: int = 50, kernel_bytes: int = 2 * MiB, partial: bool = False) -> bytes:
    """A non-recursive zip bomb: many directory entries share one local record's data.

    ``partial`` instead builds two records where the first one's declared data runs over the
    second one's header (the "quoted overlap" shape).
    """
    kernel = RawEntry("cat/a.png", bytes(kernel_bytes), zipfile.ZIP_DEFLATED)
    if partial:
        second = RawEntry("cat/b.png", bytes(kernel_bytes), zipfile.ZIP_DEFLATED)
        spill = len(_local_header(second)) + len(second.disk_data())
        first = RawEntry("cat/a.png", kernel.content, zipfile.ZIP_DEFLATED, data=kernel.data,
                         compress_size=len(kernel.disk_data()) + spill)
        return raw_zip([first, second])
    central = [(0, RawEntry(f"cat/{i:03d}.png", method=zipfile.ZIP_DEFLATED, data=kernel.data,
                            crc=zlib.crc32(kernel.content), file_size=kernel_bytes)) for i in range(copies)]
    return raw_zip([kernel], central)


def lying_bomb_zip(real_size: int = GiB, declared: int = 10 * MiB, name: str = "cat/bomb.png") -> bytes:
    """One deflated entry of ``real_size`` zeros whose headers declare only ``declared`` bytes."""
    comp = zlib.compressobj(1, zlib.DEFLATED, -15)
    chunk, parts = bytes(MiB), []
    for _ in range(real_size // MiB):
        parts.append(comp.compress(chunk))
    parts.append(comp.flush())
    data = b"".join(parts)
    entry = RawEntry(name, method=zipfile.ZIP_DEFLATED, data=data, crc=zlib.crc32(bytes(declared)),
                     file_size=declared)
    return raw_zip([entry])


def with_raw_entries(base: Sequence[tuple[str, bytes]], extra: Sequence[RawEntry]) -> bytes:
    """A hand-built zip of ordinary stored entries plus ``extra`` raw ones."""
    return raw_zip([RawEntry(n, c) for n, c in base] + list(extra))


# ---------------------------------------------------------------- CSV

_WORDS = ["film", "plot", "actor", "ending", "music", "scene", "script", "costume", "cast", "story",
          "director", "camera", "dialogue", "pace", "twist", "villain", "hero", "soundtrack"]
_MOODS = {"positive": ["loved", "enjoyed", "admired"], "negative": ["hated", "disliked", "regretted"],
          "neutral": ["watched", "noticed", "saw"]}


def sentence(seed: int, label: str = "positive") -> str:
    """A distinct short ASCII review: the seed is in it, so no two rows repeat."""
    rng = random.Random(seed)
    verb = rng.choice(_MOODS.get(str(label).strip().lower(), ["rated"]))
    words = " ".join(rng.sample(_WORDS, 3))
    return f"I {verb} the {words}, review no. {seed}"


def csv_rows(classes: dict[str, int], seed: int = 0) -> list[list[str]]:
    """[text, label] rows, ``count`` per label, interleaved."""
    rows, n = [], seed
    for label, count in classes.items():
        for _ in range(count):
            rows.append([sentence(n, label), label])
            n += 1
    random.Random(seed).shuffle(rows)
    return rows


def csv_text(rows: Sequence[Sequence[str]], header: Sequence[str] | None = ("text", "label"),
             newline: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def encode(text: str, encoding: str = "utf-8") -> bytes:
    """``utf-8``, ``utf-8-sig``, ``utf-16-le``/``utf-16-be`` (with their BOM), ``cp1252``..."""
    if encoding == "utf-16-le":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    if encoding == "utf-16-be":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    return text.encode(encoding)


def csv_bytes(classes: dict[str, int] | None = None, *, rows: Sequence[Sequence[str]] | None = None,
              header: Sequence[str] | None = ("text", "label"), encoding: str = "utf-8",
              newline: str = "\n", seed: int = 0) -> bytes:
    """A sentiment CSV: default two labels of 100 rows each, with a text,label header."""
    if rows is None:
        rows = csv_rows(classes or {"positive": 100, "negative": 100}, seed)
    return encode(csv_text(rows, header, newline), encoding)


def jpeg_with_damaged_exif(seed: int = 3) -> bytes:
    """A JPEG whose EXIF directory is corrupt in a way that made Pillow's exif_transpose raise."""
    data = bytearray(jpeg_with_metadata(seed))
    data[data.index(b"Exif\x00\x00") + 17] = 0
    return bytes(data)
