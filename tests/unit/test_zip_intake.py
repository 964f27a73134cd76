"""The image zip rules, hostile input included: one test per behaviour, driven through validate_dataset."""
from __future__ import annotations

import io
import re
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from platform_core.config import Limits
from platform_core.validation import ValidationReport, validate_dataset
from tests import gen

DEFAULT = Limits()


def check(data: bytes, limits: Limits = DEFAULT, filename: str = "pets.zip") -> ValidationReport:
    return validate_dataset(data, filename, limits)


def codes(report: ValidationReport) -> list[str]:
    return [p.code for p in report.errors]


def error(report: ValidationReport, code: str) -> str:
    """The message of the one error with ``code``, so a test can read what the user is told."""
    found = [p.message for p in report.errors if p.code == code]
    assert len(found) == 1, report.as_dict()
    return found[0]


def wheres(report: ValidationReport) -> set[str]:
    return {p.where for p in report.errors}


def assert_rejected(report: ValidationReport) -> None:
    assert not report.valid and report.normalised is None, report.as_dict()


def pets(extra=(), **kw) -> bytes:
    """Two valid classes of ten images, plus ``extra`` entries."""
    return gen.image_zip({"cat": 10, "dog": 10}, extra=extra, **kw)


def stored_names(report: ValidationReport) -> list[str]:
    assert report.normalised is not None, report.as_dict()
    with zipfile.ZipFile(io.BytesIO(report.normalised)) as zf:
        return zf.namelist()


def stored_image(report: ValidationReport, name: str) -> Image.Image:
    assert report.normalised is not None
    with zipfile.ZipFile(io.BytesIO(report.normalised)) as zf:
        img = Image.open(io.BytesIO(zf.read(name)))
        img.load()
        return img


_OPEN = zipfile.ZipFile.open


@pytest.fixture
def no_decompression(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any entry is opened for reading (writing, to build inputs, is fine)."""
    def guarded(self, name, mode="r", *args, **kwargs):
        assert mode != "r", f"{name} was decompressed"
        return _OPEN(self, name, mode, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "open", guarded)


@pytest.fixture
def read_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the entries the validator opens for reading, in order."""
    names: list[str] = []

    def recording(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            names.append(getattr(name, "filename", name))
        return _OPEN(self, name, mode, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "open", recording)
    return names


class FakeStream:
    """What a decompressor that trusts the data (not the declared size) would hand back."""

    def __init__(self, total: int | None) -> None:
        self.total, self.served = total, 0

    def read(self, n: int = -1) -> bytes:
        left = n if self.total is None else min(n, self.total - self.served)
        self.served += max(left, 0)
        return bytes(max(left, 0))

    def __enter__(self) -> "FakeStream":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def serve(monkeypatch: pytest.MonkeyPatch, total: int | None) -> list[FakeStream]:
    """Make every entry read as ``total`` zero bytes (None: endless); returns the streams opened."""
    opened: list[FakeStream] = []

    def fake_open(self, name, mode="r", *args, **kwargs):
        if mode != "r":
            return _OPEN(self, name, mode, *args, **kwargs)
        opened.append(FakeStream(total))
        return opened[-1]
    monkeypatch.setattr(zipfile.ZipFile, "open", fake_open)
    return opened


# ---------------------------------------------------------------- caps on size, count and ratio


def test_valid_zip_of_two_classes_of_ten_images_is_accepted() -> None:
    report = check(pets())
    assert report.valid, report.as_dict()
    assert report.classes == {"cat": 10, "dog": 10} and not report.warnings


def test_zip_over_the_archive_size_cap_is_rejected_without_being_opened(no_decompression) -> None:
    data = pets()
    report = check(data, Limits(max_archive_bytes=len(data) - 1))
    assert_rejected(report)
    assert "over the limit of" in error(report, "file_too_large")


def test_archive_size_cap_is_configurable() -> None:
    data = pets()
    assert check(data, Limits(max_archive_bytes=len(data))).valid


def test_zip_with_more_entries_than_the_cap_is_rejected() -> None:
    report = check(pets(), Limits(max_entries=19))
    assert_rejected(report)
    assert "limit is 19" in error(report, "too_many_entries")


def test_entry_count_is_capped_before_zipfile_parses_the_directory(monkeypatch) -> None:
    data = gen.raw_zip([gen.RawEntry(f"cat/{i}.png", b"x") for i in range(2001)])
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("the directory was parsed"))
    assert codes(check(data)) == ["too_many_entries"]


def test_zip_declaring_more_than_the_total_uncompressed_cap_is_rejected_before_decompressing(
        no_decompression) -> None:
    report = check(pets(), Limits(max_total_bytes=20_000))
    assert_rejected(report)
    assert "limit is 20 KB" in error(report, "too_large_uncompressed")


def test_zip_over_the_total_uncompressed_cap_names_the_entries_that_make_it_too_large(no_decompression) -> None:
    big = [(f"dog/big_{i}.png", gen.png(90 + i, (200, 200))) for i in range(3)]
    data = pets(extra=big)
    largest = max(big, key=lambda e: len(e[1]))[0]
    report = check(data, Limits(max_total_bytes=sum(len(c) for _, c in big)))
    message = error(report, "too_large_uncompressed")
    assert wheres(report) == {largest} and f"{largest} (" in message
    assert all(name in message for name, _ in big) and "Send fewer or smaller images" in message


def test_entry_declaring_more_than_the_per_entry_cap_is_rejected_before_it_is_read(read_names) -> None:
    big = gen.png(99, (200, 200))
    report = check(pets(extra=[("dog/huge.png", big)]), Limits(max_entry_bytes=len(big) - 1))
    assert_rejected(report)
    assert wheres(report) == {"dog/huge.png"} and "dog/huge.png" not in read_names
    assert "per file" in error(report, "unsafe_entry")


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
def test_entry_whose_declared_size_understates_its_data_is_rejected_naming_it(method: int) -> None:
    liar = gen.RawEntry("dog/liar.png", gen.png(99), method, file_size=100)
    data = gen.with_raw_entries(gen.image_entries({"cat": 10, "dog": 10}), [liar])
    report = check(data)
    assert_rejected(report)
    assert wheres(report) == {"dog/liar.png"}


def test_real_bytes_past_the_per_entry_cap_stop_the_read_whatever_the_entry_declares(monkeypatch) -> None:
    opened = serve(monkeypatch, None)  # endless output from an entry that declares 5 KB
    report = check(pets(), Limits(max_entry_bytes=100_000))
    assert_rejected(report)
    assert all(s.served <= 100_000 + 65_536 for s in opened)
    assert "expands beyond 98 KB" in report.errors[0].message


def test_real_bytes_past_the_total_cap_stop_reading_the_archive(monkeypatch) -> None:
    opened = serve(monkeypatch, 60_000)  # every entry yields more than it declares
    report = check(pets(), Limits(max_total_bytes=200_000))
    assert_rejected(report)
    assert len(opened) == 4  # 4 x 60 KB passes 200 KB; nothing after that is opened
    assert "beyond 195 KB uncompressed" in report.errors[-1].message
    assert "class_size" not in codes(report)  # counts of a half-read archive would mislead


def test_real_bytes_past_the_compression_ratio_cap_stop_the_read(monkeypatch) -> None:
    serve(monkeypatch, 3_000_000)  # about 500:1 for a 5 KB entry
    report = check(pets(), Limits(max_total_bytes=10**9))
    assert_rejected(report)
    assert "which only a zip bomb does" in report.errors[0].message


def test_entry_declaring_a_compression_ratio_over_the_cap_is_rejected_before_it_is_read(read_names) -> None:
    zeros = (gen.zip_info("dog/zeros.png"), bytes(2 * gen.MiB))  # ~1000:1
    report = check(pets(extra=[zeros]))
    assert_rejected(report)
    assert wheres(report) == {"dog/zeros.png"} and "compresses" in error(report, "unsafe_entry")
    assert "dog/zeros.png" not in read_names


def test_compression_ratio_cap_is_configurable() -> None:
    zeros = (gen.zip_info("dog/zeros.png"), bytes(2 * gen.MiB))
    report = check(pets(extra=[zeros]), Limits(max_compression_ratio=10_000))
    assert "unsafe_entry" not in codes(report)  # read, then refused as an image
    assert wheres(report) == {"dog/zeros.png"} and codes(report) == ["bad_image"]


# ---------------------------------------------------------------- overlapping entries


def test_directory_entries_sharing_one_local_record_are_rejected_as_overlapping(no_decompression) -> None:
    report = check(gen.overlapping_zip(copies=50))
    assert codes(report) == ["overlapping_entries"]
    assert "overlap" in report.errors[0].message


def test_entry_whose_data_runs_over_the_next_header_is_rejected_as_overlapping(no_decompression) -> None:
    report = check(gen.overlapping_zip(partial=True))
    assert codes(report) == ["overlapping_entries"]
    assert "'cat/a.png' and 'cat/b.png' overlap" in report.errors[0].message


def test_entry_whose_data_runs_into_the_directory_is_rejected(no_decompression) -> None:
    entry = gen.RawEntry("cat/a.png", gen.png(1), compress_size=len(gen.png(1)) + 10)
    assert codes(check(gen.raw_zip([entry]))) == ["overlapping_entries"]


# ---------------------------------------------------------------- reject, do not sanitise


def rejected_entry(name: str | bytes, content: bytes | None = None, **raw) -> ValidationReport:
    """A valid zip plus one hand-built entry; the whole upload must be refused."""
    entry = gen.RawEntry(name, gen.png(99) if content is None else content, **raw)
    report = check(gen.with_raw_entries(gen.image_entries({"cat": 10, "dog": 10}), [entry]))
    assert_rejected(report)
    return report


def test_zip_with_dotdot_entry_is_rejected_naming_the_entry() -> None:
    report = rejected_entry("cat/../../evil.png")
    assert wheres(report) == {"cat/../../evil.png"} and "'..'" in error(report, "unsafe_entry")


def test_zip_with_absolute_path_is_rejected_naming_the_entry() -> None:
    report = rejected_entry("/etc/cat/evil.png")
    assert wheres(report) == {"/etc/cat/evil.png"} and "absolute" in error(report, "unsafe_entry")


def test_zip_with_backslash_in_a_name_is_rejected_naming_the_entry() -> None:
    report = rejected_entry("cat\\..\\evil.png")
    assert wheres(report) == {"cat\\..\\evil.png"} and "backslash" in error(report, "unsafe_entry")


def test_zip_with_drive_letter_is_rejected_naming_the_entry() -> None:
    report = rejected_entry("C:/cat/evil.png")
    assert wheres(report) == {"C:/cat/evil.png"} and "drive letter" in error(report, "unsafe_entry")


def test_zip_with_control_character_in_a_name_is_rejected_showing_it_escaped() -> None:
    report = rejected_entry("cat/evil\x1b[31m.png")
    assert wheres(report) == {"cat/evil\\u001b[31m.png"}


def test_zip_with_bidi_override_in_a_name_is_rejected_showing_it_escaped() -> None:
    report = rejected_entry("cat/evil\u202egnp.exe")
    assert wheres(report) == {"cat/evil\\u202egnp.exe"}
    assert "\u202e" not in error(report, "unsafe_entry")


def test_zip_with_nul_byte_in_a_name_is_rejected_though_zipfile_cuts_the_name_there() -> None:
    report = rejected_entry(b"cat/evil.png\x00.exe")
    assert wheres(report) == {"cat/evil.png\\u0000.exe"}


def test_zip_with_line_separator_in_a_name_is_rejected() -> None:
    rejected_entry("cat/evil\u2028.png")


def test_zip_with_symlink_entry_is_rejected_naming_the_entry() -> None:
    link = (gen.zip_info("cat/link.png", symlink=True), b"../../../etc/passwd")
    report = check(pets(extra=[link]))
    assert_rejected(report)
    assert wheres(report) == {"cat/link.png"} and "symbolic link" in error(report, "unsafe_entry")


def test_zip_with_encrypted_entry_is_rejected_naming_the_entry() -> None:
    report = rejected_entry("cat/secret.png", bytes(12) + gen.png(99), flags=0x1)
    assert wheres(report) == {"cat/secret.png"} and "encrypted" in error(report, "unsafe_entry")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_zip_with_compression_other_than_stored_or_deflate_is_rejected_naming_the_entry(method: int) -> None:
    odd = (gen.zip_info("cat/odd.png", compress_type=method), gen.png(99))
    report = check(pets(extra=[odd]))
    assert_rejected(report)
    assert wheres(report) == {"cat/odd.png"} and f"method {method}" in error(report, "unsafe_entry")


def test_nested_zip_named_as_archive_is_rejected_naming_the_entry() -> None:
    report = check(pets(extra=[("cat/more.zip", gen.valid_zip())]))
    assert_rejected(report)
    assert wheres(report) == {"cat/more.zip"}


@pytest.mark.parametrize("inner", [b"PK\x03\x04", b"\x1f\x8b\x08\x00", b"7z\xbc\xaf\x27\x1c"],
                         ids=["zip", "gzip", "7z"])
def test_nested_archive_named_as_an_image_is_rejected_by_content(inner: bytes) -> None:
    report = check(pets(extra=[("cat/photo.png", inner + bytes(200))]))
    assert wheres(report) == {"cat/photo.png"} and codes(report) == ["nested_archive"]


def test_every_unsafe_entry_is_named_not_only_the_first() -> None:
    bad = [gen.RawEntry(n, gen.png(90 + i)) for i, n in enumerate(["../a.png", "/b.png", "c:\\d.png"])]
    report = check(gen.with_raw_entries(gen.image_entries({"cat": 10, "dog": 10}), bad))
    assert wheres(report) == {"../a.png", "/b.png", "c:\\d.png"}


# ---------------------------------------------------------------- layout


def test_macosx_ds_store_and_thumbs_db_are_ignored() -> None:
    junk = [("__MACOSX/cat/._img_000.png", b"\x00\x05\x16\x07junk"), (".DS_Store", b"Bud1"),
            ("cat/.DS_Store", b"Bud1"), ("dog/Thumbs.db", b"x"), ("dog/._img_001.png", b"x")]
    report = check(pets(extra=junk, dirs=["__MACOSX", "__MACOSX/cat"]))
    assert report.valid, report.as_dict()
    assert report.classes == {"cat": 10, "dog": 10}


def test_class_folders_inside_one_top_level_folder_are_accepted() -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 10}, top="my pets", dirs=["my pets", "my pets/cat"]))
    assert report.valid, report.as_dict()
    assert report.classes == {"cat": 10, "dog": 10}
    assert all(n.startswith(("cat/", "dog/")) for n in stored_names(report))


def test_file_at_the_root_is_rejected_naming_it() -> None:
    report = check(pets(extra=[("stray.png", gen.png(99))]))
    assert_rejected(report)
    assert "stray.png" in error(report, "file_at_root")


def test_file_beside_class_folders_in_the_top_folder_is_rejected_naming_it() -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 10}, top="top", extra=[("top/notes.png", gen.png(99))]))
    assert "top/notes.png" in error(report, "file_at_root")


def test_folder_nested_inside_a_class_folder_is_rejected_naming_the_entry() -> None:
    report = check(pets(extra=[("cat/kittens/img.png", gen.png(99))]))
    assert_rejected(report)
    assert "cat/kittens/img.png" in error(report, "nested_too_deep")


def test_two_top_level_folders_holding_class_folders_are_rejected_as_too_deep() -> None:
    data = gen.make_zip(gen.image_entries({"cat": 10}, top="a") + gen.image_entries({"dog": 10}, top="b", seed=50))
    assert "nested_too_deep" in codes(check(data))


# ---------------------------------------------------------------- decoding every image


def test_truncated_jpeg_that_passes_verify_is_rejected_because_it_fails_to_load() -> None:
    broken = gen.truncated(gen.jpeg(99, (64, 64)))
    Image.open(io.BytesIO(broken)).verify()  # the trap: verify() alone says nothing is wrong
    report = check(pets(extra=[("cat/broken.jpg", broken)]))
    assert_rejected(report)
    assert wheres(report) == {"cat/broken.jpg"} and "could not be decoded" in error(report, "bad_image")


def test_truncated_png_is_rejected_naming_it() -> None:
    report = check(pets(extra=[("dog/broken.png", gen.truncated(gen.png(99, (64, 64))))]))
    assert wheres(report) == {"dog/broken.png"} and codes(report) == ["bad_image"]


def test_image_over_the_pixel_cap_is_rejected_naming_it() -> None:
    report = check(pets(extra=[("dog/big.png", gen.png(99, (50, 50)))]), Limits(max_image_pixels=2000))
    assert wheres(report) == {"dog/big.png"}
    assert "50x50 pixels" in error(report, "bad_image")


def test_png_declaring_huge_dimensions_is_rejected_as_a_decompression_bomb() -> None:
    bomb = gen.png_declaring(100_000, 100_000)
    assert len(bomb) < 200
    report = check(pets(extra=[("dog/bomb.png", bomb)]), Limits(max_image_pixels=10**12))
    assert wheres(report) == {"dog/bomb.png"} and "decompression bomb" in error(report, "bad_image")


def test_decompression_bomb_warning_is_treated_as_an_error() -> None:
    # 10000 x 10000 is past Pillow's warning threshold but under its error threshold.
    assert Image.MAX_IMAGE_PIXELS < 10**8 < 2 * Image.MAX_IMAGE_PIXELS
    report = check(pets(extra=[("dog/bomb.png", gen.png_declaring(10_000, 10_000))]),
                   Limits(max_image_pixels=10**12))
    assert wheres(report) == {"dog/bomb.png"} and "decompression bomb" in error(report, "bad_image")


def test_default_pixel_cap_rejects_a_small_png_declaring_48_megapixels() -> None:
    report = check(pets(extra=[("dog/bomb.png", gen.png_declaring(8000, 6000))]))
    assert "8000x6000 pixels (limit 40 megapixels)" in error(report, "bad_image")


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP"])
def test_image_that_is_not_jpeg_or_png_is_rejected_by_content_whatever_its_name(fmt: str) -> None:
    report = check(pets(extra=[("cat/photo.jpg", gen.image_bytes(99, fmt))]))
    assert wheres(report) == {"cat/photo.jpg"} and "not a JPEG or PNG" in error(report, "bad_image")


def test_jpeg_named_png_is_accepted_by_content_and_stored_as_jpeg() -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 9}, extra=[("dog/really_a_jpeg.png", gen.jpeg(99))]))
    assert report.valid, report.as_dict()
    assert "dog/0010.jpg" in stored_names(report)  # stored in name order: after dog/img_008.png
    assert stored_image(report, "dog/0010.jpg").format == "JPEG"


def test_png_named_jpg_is_accepted_by_content_and_stored_as_png() -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 9}, extra=[("dog/zz.jpg", gen.png(99))]))
    assert report.valid and "dog/0010.png" in stored_names(report)


def test_image_with_damaged_exif_is_rejected_not_raised() -> None:
    report = check(pets(extra=[("cat/exif.jpg", gen.jpeg_with_damaged_exif())]))
    assert wheres(report) <= {"cat/exif.jpg"}


def test_sixteen_bit_png_is_scaled_to_eight_bits_not_clipped_to_white() -> None:
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, format="PNG")
    report = check(gen.image_zip({"cat": 10, "dog": 9}, extra=[("dog/zz_16bit.png", out.getvalue())]))
    stored = np.asarray(stored_image(report, "dog/0010.png"))
    assert abs(stored.mean() - ramp.mean() / 257) < 2


# ---------------------------------------------------------------- what is stored


def test_normalised_zip_uses_generated_names_one_folder_per_class() -> None:
    odd_names = [("cat/IMG 0001 (copy).PNG", gen.png(90)), ("dog/photo.final.v2.png", gen.png(91))]
    report = check(gen.image_zip({"cat": 10, "dog": 10}, extra=odd_names))
    names = stored_names(report)
    assert len(names) == 22
    assert all(re.fullmatch(r"(cat|dog)/\d{4}\.(png|jpg)", n) for n in names), names
    assert "cat/0011.png" in names and report.normalised_name == "images.zip"


def test_normalised_images_carry_no_exif_comment_or_text_chunks() -> None:
    extra = [("dog/meta.jpg", gen.jpeg_with_metadata(90)), ("dog/meta.png", gen.png_with_metadata(91))]
    report = check(gen.image_zip({"cat": 10, "dog": 8}, extra=extra))
    for name in ("dog/0009.jpg", "dog/0010.png"):
        img = stored_image(report, name)
        assert not img.getexif() and not {"exif", "comment", "Author", "icc_profile"} & set(img.info), img.info
    assert b"SpyCam" not in report.normalised and b"Secret Lane" not in report.normalised


def test_exif_rotation_is_applied_before_the_metadata_is_dropped() -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 9}, extra=[("dog/rotated.jpg", gen.jpeg_with_metadata(90))]))
    assert stored_image(report, "dog/0010.jpg").size == (32, 48)  # saved 48x32 with "rotate 90"


def test_validation_never_extracts_the_zip(monkeypatch) -> None:
    for method in ("extractall", "extract"):
        monkeypatch.setattr(zipfile.ZipFile, method, lambda *a, **k: pytest.fail("extracted"))
    assert check(pets()).valid


# ---------------------------------------------------------------- class rules


def test_ten_classes_of_ten_images_are_accepted() -> None:
    report = check(gen.image_zip({f"c{i}": 10 for i in range(10)}))
    assert report.valid, report.as_dict()


def test_single_class_is_rejected() -> None:
    report = check(gen.image_zip({"cat": 10}))
    assert "Found 1 class folder;" in error(report, "class_count")


def test_eleven_classes_are_rejected() -> None:
    report = check(gen.image_zip({f"c{i:02d}": 10 for i in range(11)}))
    assert "Found 11 class folders; an image dataset needs 2 to 10" in error(report, "class_count")


def test_class_with_nine_images_is_rejected_naming_the_class() -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 9}))
    assert wheres(report) == {"dog"} and "9 usable images" in error(report, "class_size")


def test_class_with_a_hundred_and_one_images_is_rejected_naming_the_class() -> None:
    report = check(gen.image_zip({"cat": 100, "dog": 101}, size=(32, 32)))
    assert wheres(report) == {"dog"} and "101 usable images" in error(report, "class_size")


def test_empty_class_folder_is_rejected_naming_it() -> None:
    report = check(pets(dirs=["bird"]))
    assert "'bird' is empty" in error(report, "empty_class")
    assert report.classes == {"bird": 0, "cat": 10, "dog": 10}


def test_class_folder_holding_only_ds_store_is_rejected_as_empty() -> None:
    report = check(pets(extra=[("bird/.DS_Store", b"Bud1")]))
    assert "'bird' is empty" in error(report, "empty_class")


def test_class_folders_differing_only_in_letter_case_are_rejected() -> None:
    report = check(gen.image_zip({"cat": 10, "Cat": 10, "dog": 10}))
    assert "Cat, cat" in error(report, "class_name")


def test_every_class_problem_is_listed_at_once_naming_the_entries() -> None:
    extra = [("stray.png", gen.png(90)), ("cat/deep/x.png", gen.png(91)),
             ("cat/broken.jpg", gen.truncated(gen.jpeg(92))), ("cat/anim.jpg", gen.image_bytes(93, "GIF"))]
    raw = [gen.RawEntry("dog/../x.png", gen.png(94))]
    entries = gen.image_entries({"cat": 10, "dog": 3}) + [("bird/", b"")] + [(n, c) for n, c in extra]
    report = check(gen.with_raw_entries(entries, raw))
    assert set(codes(report)) == {"unsafe_entry", "file_at_root", "nested_too_deep", "bad_image",
                                  "empty_class", "class_size"}
    assert {"dog/../x.png", "stray.png", "cat/deep/x.png", "cat/broken.jpg", "cat/anim.jpg",
            "bird", "dog"} <= wheres(report)


# ---------------------------------------------------------------- warnings


def test_imbalance_over_two_to_one_is_a_warning_not_an_error() -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 21}))
    assert report.valid and [w.code for w in report.warnings] == ["imbalance"]
    assert "21 vs 10" in report.warnings[0].message


def test_imbalance_of_exactly_two_to_one_is_not_warned() -> None:
    assert not check(gen.image_zip({"cat": 10, "dog": 20})).warnings


def test_images_smaller_than_32_px_are_a_warning() -> None:
    report = check(gen.image_zip({"cat": 10, "dog": 10}, size=(16, 16)))
    assert report.valid and [w.code for w in report.warnings] == ["small_images"]
    assert "All 20 images are smaller than 32 px" in report.warnings[0].message


def test_duplicate_files_are_a_warning_naming_them() -> None:
    report = check(pets(extra=[("dog/copy.png", gen.png(0))]))  # seed 0 is cat/img_000.png
    assert report.valid
    assert [w.code for w in report.warnings] == ["duplicate_files", "label_leakage"]  # and in two classes
    assert "cat/img_000.png = dog/copy.png" in report.warnings[0].message


# ---------------------------------------------------------------- a 1 GiB bomb, in bounded memory


@pytest.fixture(scope="session")
def gib_bomb() -> bytes:
    return gen.deflate_bomb_zip(gen.GiB)


@pytest.fixture(scope="session")
def lying_gib_bomb() -> bytes:
    return gen.lying_bomb_zip(gen.GiB, declared=10 * gen.MiB)


def peak_mib_while_validating(data: bytes) -> tuple[ValidationReport, float]:
    tracemalloc.start()
    try:
        report = check(data)
        return report, tracemalloc.get_traced_memory()[1] / gen.MiB
    finally:
        tracemalloc.stop()


def test_one_gib_deflate_bomb_is_rejected_with_bounded_memory(gib_bomb: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(gib_bomb)) as zf:
        assert zf.infolist()[0].file_size >= gen.GiB and len(gib_bomb) < 8 * gen.MiB
    report, peak = peak_mib_while_validating(gib_bomb)
    assert_rejected(report)
    assert peak < 64, f"peak {peak:.1f} MiB"


def test_one_gib_deflate_bomb_declaring_ten_mib_is_rejected_with_bounded_memory(lying_gib_bomb: bytes) -> None:
    report, peak = peak_mib_while_validating(lying_gib_bomb)
    assert_rejected(report)
    assert "cat/bomb.png" in wheres(report)
    assert peak < 64, f"peak {peak:.1f} MiB"
