"""Decode an uploaded image fully and re-encode it; JPEG and PNG are told by content only."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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


def thumbnail(img: Image.Image) -> bytes:
    return img.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR).tobytes()


def difference_hash(img: Image.Image) -> int:
    """dHash on a 17x16 greyscale thumbnail, one bit per horizontal gradient: stable under resizing and
    recompression, and fine enough (256 bits) that different pictures of one kind of thing differ."""
    small = img.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BILINEAR)
    pixels = small.tobytes()
    bits = 0
    for row in range(HASH_SIDE):
        base = row * (HASH_SIDE + 1)
        for col in range(HASH_SIDE):
            bits = (bits << 1) | (pixels[base + col] > pixels[base + col + 1])
    return bits


class ImageRejected(Exception):
    """Raised with a short reason (used only inside validation)."""


def decode_and_normalise(raw: bytes, max_pixels: int) -> DecodedImage:
    """Fully decode a JPEG or PNG, drop metadata, apply EXIF rotation and re-encode it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on damaged EXIF are not ours to print
            img = Image.open(io.BytesIO(raw), formats=("JPEG", "PNG"))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageRejected(f"is {width}x{height} pixels (limit {max_pixels / 1_000_000:g} megapixels)")
            img.load()
            return _reencode(img, width, height)
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


def _reencode(img: Image.Image, width: int, height: int) -> DecodedImage:
    """Rotate by EXIF, flatten to RGB or L, shrink, and save with no metadata at all."""
    source_format = img.format
    img = ImageOps.exif_transpose(img)
    img = to_plain_mode(img)
    if max(img.size) > MAX_STORED_SIDE:
        img.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE))
    img.info = {}  # Pillow copies some of info (JPEG comment, PNG ICC profile) into what it saves
    out = io.BytesIO()
    if source_format == "JPEG":
        img.save(out, format="JPEG", quality=95)
        ext = "jpg"
    else:
        img.save(out, format="PNG", optimize=False)
        ext = "png"
    return DecodedImage(out.getvalue(), ext, width, height, difference_hash(img), thumbnail(img))


def to_plain_mode(img: Image.Image) -> Image.Image:
    """RGB or L: transparency composited on white, 16-bit and float greys scaled to 8 bits."""
    if img.mode in ("RGB", "L"):
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits; convert("L") would clip almost every pixel to white.
        return img.convert("I").point(lambda v: v / 257).convert("L")
    if img.mode in ("1", "F"):
        return img.convert("L")
    return img.convert("RGB")


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:80]
