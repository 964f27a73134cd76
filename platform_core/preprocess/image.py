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


def image_spec(size: int = 224, **framing: Any) -> dict[str, Any]:
    """A fresh spec for ``size`` x ``size`` input with ImageNet normalisation, and ``framing`` (what
    ``framing_of`` measures of the training pictures; portable.frame applies it)."""
    return {**IMAGE_SPEC_DEFAULT, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "size": int(size),
            **{k: v for k, v in framing.items() if v}}


def median_side(pictures: Sequence[bytes]) -> int:
    """The pictures' median longest side, read from their headers (nothing decoded); 0 for none."""
    import io

    from PIL import Image

    return int(np.median([max(Image.open(io.BytesIO(p)).size) for p in pictures])) if len(pictures) else 0


def framing_of(pictures: Sequence[bytes], size: int) -> dict[str, Any]:
    """How the training pictures are framed, for portable.frame: ``strip_frames``; ``background``, the colour
    most of their edges are (three in five of them, each edge mostly that colour; absent for photos), with
    ``content_share``, the median share of the longest side their content takes; ``source_side``, their
    median longest side when it is under the model's input side (a larger input is brought down to it)."""
    import io

    from PIL import Image

    from platform_core.preprocess.portable import TOLERANCE, content_box, edge_colour, to_plain_mode

    decoded = [to_plain_mode(Image.open(io.BytesIO(p))).convert("RGB") for p in pictures]
    edges = [edge_colour(img) for img in decoded]
    found = np.array([c for c, share in edges if share >= 0.5])
    out: dict[str, Any] = {"strip_frames": True}
    if len(found) and len(found) * 5 >= len(decoded) * 3:  # three in five or more: the pictures' own background
        colour = np.median(found, axis=0)
        close = [img for img, (c, share) in zip(decoded, edges)
                 if share >= 0.5 and np.abs(np.array(c) - colour).max() <= TOLERANCE]
        if len(close) * 5 >= len(decoded) * 3:
            out["background"] = [int(c) for c in colour]
            shares = []
            for img in close:
                box = content_box(img, out["background"])
                if box:
                    shares.append(max(box[2] - box[0], box[3] - box[1]) / max(img.size))
            out["content_share"] = round(float(np.median(shares)), 3) if shares else 0
    side = median_side(pictures)
    out["source_side"] = side if side < size else 0
    return out


def batch(images: Sequence[np.ndarray]) -> np.ndarray:
    """Stack preprocessed images into one contiguous float32 (N, 3, H, W) batch."""
    if not len(images):
        raise ValueError("an empty batch")
    return np.ascontiguousarray(np.stack(images), dtype=np.float32)
