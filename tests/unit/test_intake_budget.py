"""Validation's work budget: an upload within the size caps is answered in bounded time whatever its images
hold. Headers are read before any pixel is decoded, decoding stops once the verdict is known, and an archive
whose images would cost more than the budget is refused with what to change. Inputs are small files that
declare large images, so these tests stay fast."""
from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, JpegImagePlugin

from platform_core.config import Limits
from platform_core.validation import ValidationReport, images, validate_dataset
from platform_core.validation.budget import WorkBudget
from tests import gen
from tests.unit.test_zip_intake import assert_rejected, codes, error, pets, wheres


def check(data: bytes, work: WorkBudget | None = None, limits: Limits = Limits()) -> ValidationReport:
    return validate_dataset(data, "pets.zip", limits, work=work)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry (the image's byte count) per image validation decodes in full."""
    calls: list[int] = []
    original = images.decode_and_normalise

    def counting(raw: bytes, max_pixels: int) -> images.DecodedImage:
        calls.append(len(raw))
        return original(raw, max_pixels)
    monkeypatch.setattr(images, "decode_and_normalise", counting)
    return calls


def jpeg_declaring(width: int, height: int, progressive: bool = False) -> bytes:
    """A small JPEG whose frame header declares ``width`` x ``height``: its header reads, its body is short."""
    data = bytearray(gen.jpeg(1, (64, 64), progressive=progressive))
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_images_declaring_more_pixels_than_the_budget_are_refused_naming_them_before_any_is_decoded(
        decodes: list[int]) -> None:
    side = 6000  # 36 megapixels each: under the per-image cap of 40, and a PNG of under 200 bytes
    count = WorkBudget().max_decode_pixels // (side * side) + 1
    huge = [(f"dog/huge_{i:02d}.png", gen.png_declaring(side, side)) for i in range(count)]
    data = pets(extra=huge)
    assert len(data) < 100_000  # well within every size cap
    report = check(data)
    assert_rejected(report)
    message = error(report, "too_many_pixels")
    assert "dog/huge_00.png (6000x6000), dog/huge_01.png (6000x6000)" in message
    assert f"and {count + 20 - 3} more" in message  # every image to decode is counted, the 20 small ones too
    assert "Resize the images to at most 600 px on a side" in message  # what to change: 1000 of those fit
    assert wheres(report) == {"dog/huge_00.png"} and decodes == []
    over = check(gen.image_zip({"cat": 10, "dog": 120}, size=(8, 8), extra=huge))
    assert {"too_many_pixels", "class_size"} == set(codes(over))  # what the headers show is still reported
    assert f"Class 'dog' has {120 + count} image files" in error(over, "class_size")


def test_the_pixel_budget_is_configurable_and_counts_every_image_to_decode(decodes: list[int]) -> None:
    data = pets()  # 20 images of 40x40 pixels: 32,000 pixels
    assert check(data, WorkBudget(max_decode_pixels=32_000)).valid
    report = check(data, WorkBudget(max_decode_pixels=31_999))
    assert codes(report) == ["too_many_pixels"] and len(decodes) == 20


def test_a_large_jpeg_counts_at_the_reduced_scale_it_is_decoded_at() -> None:
    header = images.probe(jpeg_declaring(6000, 4000), Limits().max_image_pixels)
    assert (header.format, header.width, header.height) == ("JPEG", 6000, 4000)
    assert header.decode_pixels == 1500 * 1000  # libjpeg's 1/4 scale still covers the stored 1024 x 682
    wide = images.probe(jpeg_declaring(12000, 3000), Limits().max_image_pixels)
    assert wide.decode_pixels == 12000 * 3000 // 16  # at 1/8 every block is still entropy-decoded: a floor
    progressive = images.probe(jpeg_declaring(6000, 4000, progressive=True), Limits().max_image_pixels)
    assert progressive.decode_pixels == 6000 * 4000  # every scan is decoded at full size
    png = images.probe(gen.png_declaring(6000, 4000), Limits().max_image_pixels)
    assert png.decode_pixels == 6000 * 4000  # a PNG has no reduced decode


def test_a_large_jpeg_is_decoded_in_draft_mode_and_stored_at_the_usual_size(monkeypatch) -> None:
    scales: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spying(self, mode, size):
        scales.append(size)
        return original(self, mode, size)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spying)
    out = io.BytesIO()
    Image.linear_gradient("L").resize((2100, 1600)).convert("RGB").save(out, "JPEG")
    stored = images.decode_and_normalise(out.getvalue(), Limits().max_image_pixels)
    assert scales and all(w >= 1024 and h >= 780 for w, h in scales)  # never coarser than what is stored
    assert (stored.width, stored.height) == (2100, 1600)
    assert Image.open(io.BytesIO(stored.data)).size == (1024, 780)


def test_decoding_a_class_stops_at_the_first_image_past_its_cap(decodes: list[int]) -> None:
    data = gen.image_zip({"cat": 10, "dog": 150}, size=(8, 8))
    report = check(data)
    assert len(decodes) == 10 + 101  # the 101st usable image settles it; 49 are never decoded
    assert "Class 'dog' has more than 100 usable images (150 image files)" in error(report, "class_size")
    assert report.classes == {"cat": 10, "dog": 150}


def test_a_class_of_exactly_one_past_the_cap_is_counted_in_full(decodes: list[int]) -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 101}, size=(8, 8)))
    assert len(decodes) == 111 and "Class 'dog' has 101 usable images" in error(report, "class_size")


def test_more_class_folders_than_allowed_are_refused_without_decoding_an_image(decodes: list[int]) -> None:
    report = check(gen.image_zip({f"c{i:02d}": 10 for i in range(12)}, size=(8, 8)))
    assert "Found 12 class folders" in error(report, "class_count") and decodes == []
    broken = check(gen.image_zip({f"c{i:02d}": 10 for i in range(11)}, size=(8, 8),
                                 extra=[("c00/not_an_image.png", b"hello")]))
    assert "c00/not_an_image.png" in wheres(broken)  # what the headers show is still reported


def test_validation_past_its_time_budget_stops_and_names_where(decodes: list[int]) -> None:
    ticks = iter(range(10_000))
    report = check(pets(), WorkBudget(max_seconds=5, clock=lambda: float(next(ticks))))
    assert_rejected(report)
    message = error(report, "too_slow")
    assert "longer than 5 s" in message and "fewer or smaller images" in message
    stopped_at = next(p.where for p in report.errors if p.code == "too_slow")
    assert stopped_at.startswith(("cat/img_", "dog/img_")) and len(decodes) < 20


def test_images_past_a_class_cap_are_neither_decoded_nor_charged_to_the_budget(decodes: list[int]) -> None:
    # A class over its cap stops decoding at its 101st usable image, so the images after that are never paid for;
    # a budget counted on every file would refuse this for pixels instead of naming the real problem.
    side = 6000
    count = WorkBudget().max_decode_pixels // (side * side) + 1
    extra = [(f"dog/zz_{i:02d}.png", gen.png_declaring(side, side)) for i in range(count)]
    report = check(gen.image_zip({"cat": 10, "dog": 101}, size=(8, 8), extra=extra))
    assert "class_size" in codes(report) and "too_many_pixels" not in codes(report)
    assert len(decodes) == 111
