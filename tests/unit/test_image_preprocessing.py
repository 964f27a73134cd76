"""The shared image preprocessing (platform_core.preprocess.image), on images made in memory: a photo sent for
prediction is seen as the stored training copy was, and a large JPEG is decoded at reduced scale."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from platform_core.preprocess.image import image_spec, preprocess_image, preprocess_image_bytes


@pytest.mark.parametrize("mode", ["RGBA", "I;16"])
def test_a_photo_sent_for_prediction_is_seen_as_the_stored_training_images_were(mode):
    from platform_core.validation.images import decode_and_normalise

    rng = np.random.default_rng(0)
    if mode == "RGBA":  # half transparent: the stored copy sits on white
        pixels = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
        pixels[:20, :, 3] = 0
    else:  # 16-bit greyscale
        pixels = rng.integers(0, 65536, (40, 40), dtype=np.uint16)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    stored = decode_and_normalise(out.getvalue(), 10**6).data
    spec = image_spec(32)
    np.testing.assert_allclose(preprocess_image_bytes(out.getvalue(), spec), preprocess_image_bytes(stored, spec),
                               atol=1e-6)


def test_a_large_jpeg_is_decoded_at_reduced_scale_to_the_same_result():
    ramp = np.linspace(0, 255, 3000, dtype=np.float32)
    pixels = np.stack([ramp[None, :].repeat(2000, 0), ramp[::-1][None, :].repeat(2000, 0),
                       np.full((2000, 3000), 90.0)], axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    spec = image_spec()
    reduced = preprocess_image_bytes(out.getvalue(), spec)
    full = preprocess_image(Image.open(io.BytesIO(out.getvalue())), spec)
    assert reduced.shape == (3, 224, 224)
    assert float(np.abs(reduced - full).mean()) < 0.05  # in normalised units, about 3 grey levels
