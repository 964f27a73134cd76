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


# ---------------------------------------------------------------- bounded work, whatever the upload holds


class Unwalkable(bytes):
    """A thumbnail that fails the test when Python walks it byte by byte: the old pairwise check did that for
    every pair, about 34 s for a thousand identical images."""

    def __iter__(self):
        raise AssertionError("thumbnails were compared byte by byte in Python")


def pictures_of(thumbs: list[bytes], dhash: int = 0xABCDEF) -> list:
    return [("cats", f"cats/{i}.png", dhash, f"sha{i}", Unwalkable(t)) for i, t in enumerate(thumbs)]


def reference_groups(pictures: list) -> list[list[str]]:
    """The rule spelt out pair by pair (numpy, so the reference itself is quick): dHash within NEAR_BITS and
    mean grey difference within NEAR_GREY, grouped transitively."""
    from platform_core.validation.similarity import NEAR_BITS, NEAR_GREY

    thumbs = np.array([np.frombuffer(bytes(p[4]), np.uint8) for p in pictures], dtype=np.int32)
    parent = list(range(len(pictures)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i
    for i in range(len(pictures)):
        grey = np.abs(thumbs - thumbs[i]).mean(axis=1)
        for j in range(i + 1, len(pictures)):
            if (pictures[i][2] ^ pictures[j][2]).bit_count() <= NEAR_BITS and grey[j] <= NEAR_GREY:
                parent[root(j)] = root(i)
    groups: dict[int, list[str]] = {}
    for i, p in enumerate(pictures):
        groups.setdefault(root(i), []).append(p[1])
    return [g for g in groups.values() if len(g) > 1]


def test_a_thousand_identical_pictures_form_one_group_without_a_pairwise_python_loop() -> None:
    from platform_core.validation.similarity import near_groups

    groups = near_groups(pictures_of([bytes(range(256)) * 4] * 1000))
    assert len(groups) == 1 and [p[1] for p in groups[0]] == [f"cats/{i}.png" for i in range(1000)]


def test_pictures_sharing_a_hash_are_told_apart_by_their_thumbnails_as_the_rule_says() -> None:
    from platform_core.validation.similarity import near_groups

    rng = np.random.default_rng(0)
    base = rng.integers(20, 80, 1024).astype(np.int32)
    thumbs = []
    for level in range(40):  # one dHash, brightness 4 grey levels apart: never within 3 of each other
        thumbs.append((base + 4 * level).clip(0, 255))
        nudged = thumbs[-1].copy()
        nudged[rng.integers(0, 1024, 50)] += rng.integers(-2, 3, 50)  # a recompressed copy of it
        thumbs.append(nudged.clip(0, 255))
    pictures = pictures_of([t.astype(np.uint8).tobytes() for t in thumbs])
    pictures += [("dogs", "dogs/far.png", 0xABCDEF ^ ((1 << 13) - 1), "sha-far", pictures[0][4])]  # 13 bits off
    groups = [[p[1] for p in g] for g in near_groups(pictures)]
    assert groups == reference_groups(pictures)
    assert len(groups) == 40 and all(len(g) == 2 for g in groups)
