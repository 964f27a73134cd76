"""Whatever bytes arrive, validation answers with a report: no exception escapes to the caller."""
from __future__ import annotations

import io
import tracemalloc
import zipfile
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_core.config import Limits
from platform_core.validation import ValidationReport, validate_dataset
from platform_core.validation.images import ImageRejected, decode_and_normalise
from tests import gen

# Small datasets that are valid under these rules, so a mutation starts from an accepted upload.
SMALL = Limits(min_images_per_class=2, min_rows_per_class=3)
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@lru_cache
def small_zip() -> bytes:
    """Uncompressed PNGs inside, so the zip's deflate streams use real Huffman codes to break."""
    entries = [(f"{cls}/{i}.png", gen.image_bytes(n, "PNG", (16, 16), compress_level=0))
               for n, (cls, i) in enumerate([("cat", 0), ("cat", 1), ("dog", 0), ("dog", 1)])]
    return gen.make_zip(entries)


@lru_cache
def small_stored_zip() -> bytes:
    """Stored entries, so mutations reach PNG bytes (CRC permitting) rather than deflate streams."""
    return gen.with_raw_entries(gen.image_entries({"cat": 2, "dog": 2}, size=(16, 16)), [])


@lru_cache
def small_csv() -> bytes:
    rows = gen.csv_rows({"positive": 3, "negative": 3}) + [['"quoted", text', "neutral"]] * 3
    return gen.csv_bytes(rows=rows, header=(" Text", "LABEL "))


def first_entry_data(data: bytes) -> tuple[int, int]:
    """Where the first entry's compressed bytes lie in a zip."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return start, start + info.compress_size


def exif_segment(jpeg: bytes) -> tuple[int, int]:
    start = jpeg.index(b"Exif\x00\x00")
    return start, start + 160


@st.composite
def mutated(draw: st.DrawFn, original: bytes, span: tuple[int, int] | None = None) -> bytes:
    """Overwrite, insert or delete a few bytes, and sometimes cut the end off.

    Positions fall in ``span`` when given; otherwise half fall in the first 300 bytes, where
    headers and metadata live.
    """
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["set", "insert", "delete"]))
        last = max(len(data) - 1, 0)
        if span is not None:
            at = draw(st.integers(min(span[0], last), min(span[1], last)))
        else:
            at = draw(st.one_of(st.integers(0, min(last, 300)), st.integers(0, last)))
        if op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[at:at + draw(st.integers(1, 8))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


TRACED_BOUND = 64 * 2**20  # Python-level peak while validating one mutated input of a few kilobytes


def assert_answered(data: bytes, filename: str) -> None:
    """A report comes back, consistent, and the Python heap stayed bounded while it was made."""
    tracemalloc.start()
    try:
        report = validate_dataset(data, filename, SMALL)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(report, ValidationReport)
    assert report.valid == (report.normalised is not None)
    assert peak < TRACED_BOUND, f"{peak / 2**20:.0f} MiB traced for a {len(data)}-byte input"


def test_the_unmutated_inputs_are_valid() -> None:
    for data, name in ((small_zip(), "a.zip"), (small_stored_zip(), "a.zip"), (small_csv(), "a.csv")):
        report = validate_dataset(data, name, SMALL)
        assert report.valid, report.as_dict()


@FUZZ
@given(st.data())
def test_mutated_zip_always_yields_a_report(data: st.DataObject) -> None:
    original = data.draw(st.sampled_from([small_zip(), small_stored_zip()]))
    assert_answered(data.draw(mutated(original)), "pets.zip")


@FUZZ
@given(st.data())
def test_zip_with_damaged_compressed_data_always_yields_a_report(data: st.DataObject) -> None:
    original = small_zip()
    assert_answered(data.draw(mutated(original, first_entry_data(original))), "pets.zip")


@FUZZ
@given(st.data())
def test_mutated_csv_always_yields_a_report(data: st.DataObject) -> None:
    assert_answered(data.draw(mutated(small_csv())), "reviews.csv")


@FUZZ
@given(st.data())
def test_mutated_image_is_either_decoded_or_rejected_with_a_reason(data: st.DataObject) -> None:
    original = data.draw(st.sampled_from([gen.jpeg_with_metadata(1), gen.png_with_metadata(2), gen.png(3)]))
    try:
        decode_and_normalise(data.draw(mutated(original)), SMALL.max_image_pixels)
    except ImageRejected as exc:
        assert str(exc)


@FUZZ
@given(st.data())
def test_image_with_damaged_exif_is_either_decoded_or_rejected_with_a_reason(data: st.DataObject) -> None:
    original = gen.jpeg_with_metadata(1)
    try:
        decode_and_normalise(data.draw(mutated(original, exif_segment(original))), SMALL.max_image_pixels)
    except ImageRejected as exc:
        assert str(exc)
