"""The upload report card's look-alike checks: a resized, recompressed copy is found within a class
(near-duplicate) and across classes (label leakage); different pictures of one kind of thing are not."""
from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from platform_core.config import Limits
from platform_core.validation import validate_dataset


def picture(seed: int) -> Image.Image:
    """A distinct picture: 8x8 random blocks scaled to 96 px."""
    blocks = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((96, 96), Image.Resampling.NEAREST)


def encoded(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def copy_of(img: Image.Image) -> bytes:
    """The same picture as a phone would resend it: resized and saved as a JPEG."""
    return encoded(img.resize((150, 150), Image.Resampling.BILINEAR), "JPEG", quality=70)


def build(extra: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for c, cls in enumerate(("cats", "dogs")):
            for i in range(12):
                zf.writestr(f"{cls}/{i}.png", encoded(picture(100 * c + i)))
        for name, data in extra.items():
            zf.writestr(name, data)
    return out.getvalue()


def codes(report) -> dict[str, str]:
    return {w.code: w.message for w in report.warnings}


def test_distinct_pictures_raise_no_look_alike_warning() -> None:
    report = validate_dataset(build({}), "pets.zip", Limits())
    assert report.valid and not {"near_duplicates", "label_leakage"} & set(codes(report))


def test_a_recompressed_copy_in_the_same_class_is_a_near_duplicate() -> None:
    report = validate_dataset(build({"cats/again.jpg": copy_of(picture(3))}), "pets.zip", Limits())
    warned = codes(report)
    assert report.valid and "cats/again.jpg" in warned["near_duplicates"] and "cats/3.png" in warned["near_duplicates"]
    assert "label_leakage" not in warned


def test_the_same_picture_in_two_classes_is_label_leakage() -> None:
    report = validate_dataset(build({"dogs/surely_a_dog.jpg": copy_of(picture(5))}), "pets.zip", Limits())
    warned = codes(report)
    assert "cats/5.png" in warned["label_leakage"] and "dogs/surely_a_dog.jpg" in warned["label_leakage"]
    assert "mislabeled" in warned["label_leakage"]


def test_byte_identical_copies_stay_reported_once_as_duplicate_files() -> None:
    report = validate_dataset(build({"cats/twin.png": encoded(picture(7))}), "pets.zip", Limits())
    warned = codes(report)
    assert "duplicate_files" in warned and "near_duplicates" not in warned
