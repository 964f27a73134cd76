"""Image preprocessing shared by training and inference: Pillow decode, RGB, square resize, ImageNet norm.

numpy and Pillow only, so the inference Lambda stays small. The spec is stored beside each model as
preprocess.json; a model predicts the same in the Lambda as in training because both call this module.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

# One source for what inference does (it is copied into every export): platform_core.preprocess.portable.
from platform_core.preprocess.portable import (ImageTooLarge, preprocess_image,  # noqa: F401
                                               preprocess_image_bytes)

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


def batch(images: Sequence[np.ndarray]) -> np.ndarray:
    """Stack preprocessed images into one contiguous float32 (N, 3, H, W) batch."""
    if not len(images):
        raise ValueError("an empty batch")
    return np.ascontiguousarray(np.stack(images), dtype=np.float32)
