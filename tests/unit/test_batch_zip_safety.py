"""A zip sent for batch prediction passes the same zip safety checks as an upload (platform_core.validation
.zipsafety): overlapping entries, the entry count, declared and real sizes, the compression ratio; a damaged
entry is one error row of the CSV while the other entries are still predicted. A fake predictor stands in
for the model, so nothing here trains or decodes."""
from __future__ import annotations

import csv
import io
import zipfile
import zlib

import pytest

from handlers.batch import handle_batch
from handlers.commands import Attachment, Command
from handlers.services import Services
from platform_core.config import Limits
from platform_core.errors import MlbotError
from tests import gen


class CountingPredictor:
    """Answers 'ok' for every image and remembers how many bytes each one had."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def predict(self, tenant: str, name: str, *, image: bytes | None = None, text: str | None = None) -> dict:
        assert image is not None
        self.seen.append(len(image))
        return {"label": "ok", "confidence": 0.9, "top": [["ok", 0.9], ["other", 0.1]], "sure": True}


def services(limits: Limits = Limits()) -> tuple[Services, CountingPredictor]:
    predictor = CountingPredictor()
    return Services(blobs=None, records=None, limits=limits, predictor=predictor), predictor  # type: ignore[arg-type]


def predict(data: bytes, limits: Limits = Limits(), filename: str = "photos.zip"):
    built, predictor = services(limits)
    reply = handle_batch(Command("predict", "slack:T1", "u", ("colours",), Attachment(filename, data)), built)
    rows = list(csv.reader(io.StringIO(reply.file[1].decode()))) if reply.file else []
    return reply, {r[0]: r for r in rows[1:]}, predictor


def refused(data: bytes, limits: Limits = Limits(), filename: str = "photos.zip") -> tuple[str, CountingPredictor]:
    """The sentence the user is told when the whole batch is refused; no image may have been predicted."""
    built, predictor = services(limits)
    with pytest.raises(MlbotError) as caught:
        handle_batch(Command("predict", "slack:T1", "u", ("colours",), Attachment(filename, data)), built)
    assert predictor.seen == []
    return caught.value.user_message(), predictor


def test_overlapping_entries_refuse_the_whole_batch_before_anything_is_inflated(monkeypatch) -> None:
    opened = []
    original = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or original(self, *a, **k))
    message, _ = refused(gen.overlapping_zip(copies=50))  # 50 entries behind one 2 MiB deflate stream
    assert "overlap" in message and "malformed" in message and opened == []


def test_the_entry_count_is_capped_before_zipfile_parses_the_directory(monkeypatch) -> None:
    data = gen.raw_zip([gen.RawEntry(f"x/{i}.png", b"x") for i in range(2001)])
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("the directory was parsed"))
    message, _ = refused(data)
    assert "2001 entries" in message and "at most 500 images" in message


def test_a_zip_declaring_more_than_the_total_cap_is_refused_naming_its_largest_entries() -> None:
    entries = [(f"x/{i}.png", gen.png(i, (20 + 10 * i, 20))) for i in range(4)]
    message, _ = refused(gen.make_zip(entries), Limits(max_total_bytes=sum(len(c) for _, c in entries) - 1))
    assert "x/3.png" in message and "limit is" in message


def test_a_zip_over_the_archive_cap_is_refused_naming_the_file() -> None:
    data = gen.make_zip([("x/a.png", gen.png(1))])
    message, _ = refused(data, Limits(max_archive_bytes=len(data) - 1), filename="holiday.zip")
    assert "'holiday.zip'" in message and "over the limit of" in message


def test_an_entry_with_a_bad_crc_is_an_error_row_and_the_others_are_predicted() -> None:
    good = [gen.RawEntry(f"x/{i}.png", gen.png(i)) for i in range(2)]
    bad = gen.RawEntry("x/bad_crc.png", gen.png(7), crc=zlib.crc32(gen.png(7)) ^ 1)
    reply, rows, predictor = predict(gen.raw_zip([good[0], bad, good[1]]))
    assert reply.ok and len(predictor.seen) == 2 and "Predicted 2 of 3" in reply.text
    assert rows["x/bad_crc.png"][1] == "" and "damaged" in rows["x/bad_crc.png"][6]
    assert rows["x/0.png"][1] == rows["x/1.png"][1] == "ok"


def test_an_entry_with_a_truncated_deflate_stream_is_an_error_row() -> None:
    content = gen.png(3, (64, 64))
    stream = gen.deflate_raw([content])
    cut = gen.RawEntry("x/cut.png", content, zipfile.ZIP_DEFLATED, data=stream[: len(stream) // 2])
    reply, rows, predictor = predict(gen.raw_zip([cut, gen.RawEntry("x/fine.png", gen.png(4))]))
    assert reply.ok and len(predictor.seen) == 1
    assert "damaged" in rows["x/cut.png"][6] and rows["x/fine.png"][1] == "ok"


def test_an_ordinary_batch_is_predicted_in_full() -> None:
    entries = [(f"photos/{i}.png", gen.png(i)) for i in range(5)] + [("__MACOSX/._0.png", b"junk")]
    reply, rows, predictor = predict(gen.make_zip(entries))
    assert reply.ok and len(predictor.seen) == 5 and set(rows) == {f"photos/{i}.png" for i in range(5)}
