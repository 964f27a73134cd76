"""Decode an uploaded image fully and re-encode it; JPEG and PNG are told by content only. A header can be read
first (``probe``) so that what decoding will cost is known before a pixel is decoded."""
from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from platform_core.preprocess.portable import to_plain_mode  # one source: predictions and exports flatten alike

# A truncated image must fail, never load half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

MAX_STORED_SIDE = 1024  # training uses 224 px; keeping phone photos at full size only costs storage


@dataclass(frozen=True)
class DecodedImage:
    data: bytes
    extension: str
    width: int
    height: int
    dhash: int = 0  # 256-bit difference hash: copies of one picture differ in a few bits
    thumb: bytes = b""  # 32x32 greyscale, to confirm a hash match pixel by pixel


HASH_SIDE = 16
THUMB_SIDE = 32
_RESAMPLED_AS_IS = ("RGB", "L", "RGBA", "LA")  # modes Pillow resamples faithfully (RGBA with premultiplied alpha)


def thumbnail(img: Image.Image) -> bytes:
    return img.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR).tobytes()


def difference_hash(img: Image.Image) -> int:
    """dHash on a 17x16 greyscale thumbnail, one bit per horizontal gradient: stable under resizing and
    recompression, and fine enough (256 bits) that different pictures of one kind of thing differ."""
    small = np.asarray(img.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BILINEAR))
    bits = small[:, :-1] > small[:, 1:]  # row by row, the first gradient in the highest bit
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


class ImageRejected(Exception):
    """Raised with a short reason (used only inside validation)."""


@dataclass(frozen=True)
class Header:
    """What an image's header declares, read without decoding a pixel."""

    format: str
    width: int
    height: int
    # The pixels decoding works through: a PNG's all; a large baseline JPEG's at the 1/2, 1/4 or 1/8 scale libjpeg
    # decodes it at (draft), but at least a sixteenth of them, as every block is still entropy-decoded (a 12000x3300
    # JPEG decoded at 1/8 takes 28 ms here, less than the 2.5 megapixels it is counted as); a progressive JPEG's
    # all, since each of its scans is decoded at full size.
    decode_pixels: int


def probe(raw: bytes, max_pixels: int) -> Header:
    """Read a JPEG or PNG header only (Pillow opens lazily); refuse what decoding would refuse by its size."""
    with _rejections():
        img = _open(raw, max_pixels)
        width, height = img.size
        if img.info.get("progressive"):
            return Header(str(img.format), width, height, width * height)
        _draft(img)
        return Header(str(img.format), width, height, max(img.width * img.height, width * height // 16))


def decode_and_normalise(raw: bytes, max_pixels: int) -> DecodedImage:
    """Fully decode a JPEG or PNG, drop metadata, apply EXIF rotation and re-encode it."""
    with _rejections():
        img = _open(raw, max_pixels)
        width, height = img.size
        _draft(img)
        img.load()
        return _reencode(img, width, height)


@contextmanager
def _rejections() -> Iterator[None]:
    """Pillow's many failures on hostile input, as one ImageRejected with a reason a person can read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on damaged EXIF are not ours to print
            yield
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected("is not a JPEG or PNG image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("has too many pixels (decompression bomb)") from None
    except (OSError, SyntaxError, EOFError) as exc:
        raise ImageRejected(f"could not be decoded ({_short(exc)})") from None
    except Exception:  # noqa: BLE001 - Pillow's parsers raise struct.error, TypeError... on hostile input
        raise ImageRejected("could not be decoded (damaged image data or metadata)") from None


def _open(raw: bytes, max_pixels: int) -> Image.Image:
    img = Image.open(io.BytesIO(raw), formats=("JPEG", "PNG"))
    width, height = img.size
    if width * height > max_pixels:
        raise ImageRejected(f"is {width}x{height} pixels (limit {max_pixels / 1_000_000:g} megapixels)")
    return img


def stored_size(width: int, height: int) -> tuple[int, int]:
    """The size an image is stored at: at most MAX_STORED_SIDE on a side, its aspect kept."""
    side = max(width, height)
    if side <= MAX_STORED_SIDE:
        return width, height
    return max(1, width * MAX_STORED_SIDE // side), max(1, height * MAX_STORED_SIDE // side)


def _draft(img: Image.Image) -> None:
    """Let libjpeg decode a large JPEG at the smallest of 1/2, 1/4, 1/8 scale that still covers the stored size:
    a phone photo costs a quarter of its pixels or less, and the stored copy is as sharp."""
    target = stored_size(*img.size)
    if img.format == "JPEG" and target != img.size:
        img.draft(None, target)


def _reencode(img: Image.Image, width: int, height: int) -> DecodedImage:
    """Shrink, rotate by EXIF, flatten to RGB or L, and save with no metadata at all."""
    source_format = img.format
    if img.mode not in _RESAMPLED_AS_IS:
        img = to_plain_mode(img)  # palettes, 1-bit and 16-bit: flattened before resampling, as before
    if max(img.size) > MAX_STORED_SIDE:
        # Shrinking first spares rotating and flattening millions of pixels that are not kept; resampling
        # RGBA premultiplies alpha, so shrinking then compositing on white gives what the reverse order does.
        img.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE))
    ImageOps.exif_transpose(img, in_place=True)
    img = to_plain_mode(img)
    img.info = {}  # Pillow copies some of info (JPEG comment, PNG ICC profile) into what it saves
    out = io.BytesIO()
    if source_format == "JPEG":
        img.save(out, format="JPEG", quality=95)
        ext = "jpg"
    else:
        img.save(out, format="PNG", optimize=False)
        ext = "png"
    return DecodedImage(out.getvalue(), ext, width, height, difference_hash(img), thumbnail(img))


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:80]
