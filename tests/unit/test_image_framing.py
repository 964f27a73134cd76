"""portable.frame: the same picture set in a border, resized or recompressed becomes (nearly) the input the
original gives; a training picture, and a photo without a plain border, are left as they are."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from platform_core.preprocess.image import framing_of, image_spec
from platform_core.preprocess.portable import content_box, frame, plain_border, preprocess_image_bytes

RNG = np.random.default_rng(3)


def _picture() -> Image.Image:
    """A black background with a lighter, shaded object, as Fashion-MNIST draws them."""
    pixels = np.zeros((28, 28), dtype=np.uint8)
    rows, cols = np.mgrid[0:24, 0:16]
    pixels[2:26, 6:22] = (120 + 4 * rows + 3 * cols + RNG.integers(0, 20, size=(24, 16))).astype(np.uint8)
    return Image.fromarray(pixels).convert("RGB")


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


TRAINING = [_png(_picture()) for _ in range(5)]
SPEC = image_spec(224, **framing_of(TRAINING, 224))


def test_the_training_pictures_framing_is_measured() -> None:
    assert SPEC["strip_frames"] and SPEC["background"] == [0, 0, 0] and SPEC["source_side"] == 28
    assert SPEC["content_share"] == pytest.approx(24 / 28, abs=0.01)
    photos = [_png(Image.fromarray(RNG.integers(0, 255, size=(300, 300, 3), dtype=np.uint8))) for _ in range(3)]
    assert framing_of(photos, 224) == {"strip_frames": True, "source_side": 0}  # no background, not small


def test_a_training_picture_is_left_as_it_is() -> None:
    picture = _picture()
    assert np.array_equal(np.asarray(frame(picture, SPEC)), np.asarray(picture))


@pytest.mark.parametrize("colour", [255, 128, 60, 0])
def test_a_border_of_any_colour_even_the_background_is_undone(colour: int) -> None:
    picture = _picture()
    framed = ImageOps.expand(picture, border=7, fill=(colour,) * 3)
    given = preprocess_image_bytes(_png(framed), SPEC)
    original = preprocess_image_bytes(_png(picture), SPEC)
    assert np.abs(given - original).mean() < 0.05, colour  # (a background border: cut back to the usual margin)


def test_upscaled_and_recompressed_copies_come_back_close_to_the_original() -> None:
    picture = _picture()
    original = preprocess_image_bytes(_png(picture), SPEC)
    unframed = np.abs(preprocess_image_bytes(_png(ImageOps.expand(picture, border=7, fill=(255,) * 3)), image_spec(224))
                      - preprocess_image_bytes(_png(picture), image_spec(224))).mean()
    for copy in (_png(picture.resize((112, 112), Image.Resampling.BICUBIC)),
                 _jpeg(picture.resize((1280, 1280), Image.Resampling.BICUBIC), 80), _jpeg(picture, 70)):
        # within a tenth of what a white border did to the input before framing
        assert np.abs(preprocess_image_bytes(copy, SPEC) - original).mean() < unframed / 10


def test_a_photo_without_a_plain_border_is_left_alone_and_a_mount_is_taken_off() -> None:
    photo = Image.fromarray(RNG.integers(0, 255, size=(40, 60, 3), dtype=np.uint8))
    spec = {"strip_frames": True}
    assert plain_border(photo) is None and frame(photo, spec) is photo
    mounted = ImageOps.expand(photo, border=10, fill=(250, 250, 250))
    assert np.array_equal(np.asarray(frame(mounted, spec)), np.asarray(photo))
    assert content_box(Image.new("RGB", (9, 9), (5, 5, 5)), (5, 5, 5)) is None


def test_only_pictures_larger_than_the_training_side_are_brought_down() -> None:
    big = Image.fromarray(RNG.integers(0, 255, size=(300, 200, 3), dtype=np.uint8))
    assert frame(big, {"source_side": 100}).size == (67, 100)
    assert frame(big, {"source_side": 280}).size == (200, 300)  # within a quarter of it: untouched
    assert frame(big, {}).size == (200, 300)  # a model trained before framing: nothing changes
