"""Image preprocessing shared by training and inference: Pillow decode, RGB, square resize, ImageNet norm.

numpy and Pillow only, so the inference Lambda stays small. The spec is stored beside each model as
preprocess.json; a model predicts the same in the Lambda as in training because both call this module.
"""
from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps

# The flattening stored datasets went through (transparency on white, 16-bit scaled to 8), so a photo
# sent for prediction is seen as the training images were.
from platform_core.validation.images import to_plain_mode as flatten

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SPEC_DEFAULT: dict[str, Any] = {
    "type": "image",
    "size": 224,
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
    "layout": "NCHW",
}


def image_spec(size: int = 224) -> dict[str, Any]:
    """A fresh spec for ``size`` x ``size`` input with ImageNet normalisation."""
    return {**IMAGE_SPEC_DEFAULT, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "size": int(size)}


def _check(spec: dict[str, Any]) -> int:
    if spec.get("type") != "image" or spec.get("layout", "NCHW") != "NCHW":
        raise ValueError(f"not an NCHW image preprocessing spec: {spec!r}")
    return int(spec["size"])


def preprocess_image(img: Image.Image, spec: dict[str, Any]) -> np.ndarray:
    """One image as float32 (3, size, size): RGB, bilinear resize, scaled to [0, 1], normalised."""
    size = _check(spec)
    if img.mode != "RGB":
        img = flatten(img).convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    # (x / 255 - mean) / std folded into one multiply and one subtract per pixel
    scale = np.asarray(spec["std"], dtype=np.float32) * 255.0
    offset = np.asarray(spec["mean"], dtype=np.float32) / np.asarray(spec["std"], dtype=np.float32)
    pixels = np.asarray(img, dtype=np.float32)
    pixels = pixels / scale - offset
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


class ImageTooLarge(ValueError):
    """The image would decode to more pixels than allowed."""

    def __init__(self, max_pixels: int, width: int | None = None, height: int | None = None) -> None:
        self.width, self.height, self.max_pixels = width, height, max_pixels
        found = f"{width}x{height} pixels" if width and height else "more pixels than Pillow will open"
        super().__init__(f"{found}, over the {max_pixels:,} allowed")


def preprocess_image_bytes(data: bytes, spec: dict[str, Any], *, max_pixels: int | None = None,
                           formats: Sequence[str] | None = None) -> np.ndarray:
    """Decode an image (EXIF rotation applied) and preprocess it as ``preprocess_image`` does.

    ``formats`` limits which decoders may run (Pillow names: "JPEG", "PNG" ...). ``max_pixels`` bounds
    what is decoded: a JPEG is decoded at a reduced scale first (libjpeg's draft mode), so a 20 MB phone
    photo never lands in memory whole; anything still over the bound raises ImageTooLarge undecoded.
    """
    size = _check(spec)
    try:
        img = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
    except Image.DecompressionBombError:
        raise ImageTooLarge(max_pixels or 2 * (Image.MAX_IMAGE_PIXELS or 0)) from None
    if img.format == "JPEG":
        img.draft("RGB", (size * 2, size * 2))
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise ImageTooLarge(max_pixels, img.width, img.height)
    img = ImageOps.exif_transpose(img)
    return preprocess_image(img, spec)


def batch(images: Sequence[np.ndarray]) -> np.ndarray:
    """Stack preprocessed images into one contiguous float32 (N, 3, H, W) batch."""
    if not len(images):
        raise ValueError("an empty batch")
    return np.ascontiguousarray(np.stack(images), dtype=np.float32)
