"""Batch prediction: `predict NAME` with a zip of images or a CSV of texts attached answers with a CSV.

One row per input: the input (the image's name in the zip, or the text), the label and confidence, whether
the model is sure (its validation-chosen threshold), the runner-up, and an error for an input that could not
be read. Cells a spreadsheet would run as formulas (starting with = + - @, a tab or a carriage return) are
escaped with a leading apostrophe. A zip passes an upload's zip safety checks (platform_core.validation
.zipsafety): the entry count before parsing, the declared total and overlapping entries refuse the batch; an
entry's name, size, ratio or damage (bad CRC, truncated deflate) is that entry's error row, and the others are
still predicted. At most MAX_BATCH inputs.
"""
from __future__ import annotations

import csv
import io
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from handlers.commands import Attachment, Command, Reply
from handlers.services import Services
from platform_core.config import Limits
from platform_core.errors import BadPredictionInput, MlbotError, UsageError
from platform_core.prediction import MAX_IMAGE_BYTES, MAX_TEXT_CHARS
from platform_core.validation.csvcheck import TEXT_HEADERS, header_cell
from platform_core.validation.report import over_limit, size_text
from platform_core.validation.zipsafety import (
    Budget,
    EntryRefused,
    display_name,
    entry_count_bound,
    entry_problem,
    is_junk,
    name_problem,
    overlap_problem,
    read_bounded,
)

MAX_BATCH = 500
PER_ITEM_CODES = {"bad_input"}  # an unreadable input is a row's error; anything else stops the batch
HEADER = ["input", "label", "confidence", "sure", "second_label", "second_confidence", "error"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_batch(attachment: Attachment) -> bool:
    """A zip or CSV attachment (by name or content) asks for batch prediction."""
    name = attachment.filename.lower()
    if name.endswith((".zip", ".csv")):
        return True
    if isinstance(attachment.data, Path):
        with attachment.data.open("rb") as source:
            head = source.read(4)
    else:
        head = attachment.data[:4]
    return head == b"PK\x03\x04"


def escape_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


@dataclass(frozen=True)
class Item:
    """One input: what to send the predictor (``image`` bytes or ``text``), how to show it, or why not."""

    shown: str
    image: bytes | None = None
    text: str | None = None
    problem: str | None = None


def handle_batch(cmd: Command, services: Services) -> Reply:
    """Predict every input of the attached zip or CSV; the reply carries the CSV of answers."""
    assert cmd.attachment is not None and services.predictor is not None
    name = cmd.args[0]
    rows: list[list[str]] = []
    labels: Counter[str] = Counter()
    for item in _inputs(cmd.attachment, services):
        if item.problem:
            rows.append([item.shown, "", "", "", "", "", item.problem])
            continue
        try:
            answer = services.predictor.predict(cmd.tenant, name, image=item.image, text=item.text)
        except MlbotError as exc:
            if exc.code not in PER_ITEM_CODES:
                raise
            rows.append([item.shown, "", "", "", "", "", exc.user_message()])
            continue
        second = answer["top"][1] if len(answer["top"]) > 1 else ["", None]
        labels[answer["label"]] += 1
        rows.append([item.shown, answer["label"], f"{answer['confidence']:.4f}",
                     "yes" if answer.get("sure", True) else "no", second[0],
                     "" if second[1] is None else f"{second[1]:.4f}", ""])
    if not rows:
        raise BadPredictionInput("the attached file holds nothing to predict")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows([[escape_cell(c) for c in row] for row in rows])
    failed = sum(1 for r in rows if r[-1])
    counts = ", ".join(f"{label} {n}" for label, n in labels.most_common())
    text = f"Predicted {len(rows) - failed} of {len(rows)} inputs with '{name}'" + (f": {counts}" if counts else "")
    text += (f"; {failed} could not be read (see the error column)." if failed else ".") + " The CSV is attached."
    return Reply(text, data={"rows": len(rows), "failed": failed, "labels": dict(labels)},
                 file=(f"predictions-{name}.csv", out.getvalue().encode("utf-8")))


def _inputs(attachment: Attachment, services: Services) -> Iterator[Item]:
    data = attachment.data.read_bytes() if isinstance(attachment.data, Path) else attachment.data
    if data[:4] == b"PK\x03\x04" or attachment.filename.lower().endswith(".zip"):
        return _images(data, attachment.filename, services.limits)
    return _texts(data)


def _images(data: bytes, filename: str, limits: Limits) -> Iterator[Item]:
    """An upload's zip safety checks: a whole-archive problem refuses the batch, an entry's is its own row."""
    if len(data) > limits.max_archive_bytes:
        raise BadPredictionInput(f"'{display_name(filename)}' is {over_limit(len(data), limits.max_archive_bytes)}; "
                                 "send fewer images in each zip")
    bound = entry_count_bound(data)
    if bound > limits.max_entries:  # before zipfile builds an object per directory entry
        raise UsageError(f"predict NAME with a zip of at most {MAX_BATCH} images (this one has {bound} entries)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error):
        raise BadPredictionInput("the attached file is not a readable zip") from None
    with archive:
        entries = [i for i in archive.infolist() if not i.is_dir() and not is_junk(i.filename)]
        if len(entries) > MAX_BATCH:
            raise UsageError(f"predict NAME with a zip of at most {MAX_BATCH} images (this one has {len(entries)})")
        _check_archive(archive, data, entries, limits)
        # Real bytes are counted while reading, against the upload caps and the predictor's own size limit.
        per_image = replace(limits, max_entry_bytes=min(limits.max_entry_bytes, MAX_IMAGE_BYTES))
        counted = Budget(limits.max_total_bytes)
        for info in entries:
            shown = display_name(info.filename)
            problem = name_problem(info.orig_filename) or entry_problem(info, per_image)
            if problem:
                yield Item(shown, problem=problem)
                continue
            try:
                raw = read_bounded(archive, info, per_image, counted)
            except EntryRefused as exc:  # damaged (bad CRC, truncated deflate) or past a cap: this row only
                yield Item(shown, problem=str(exc))
                continue
            yield Item(shown, image=raw)


def _check_archive(archive: zipfile.ZipFile, data: bytes, entries: list[zipfile.ZipInfo], limits: Limits) -> None:
    """Whole-archive caps, as an upload's: the declared total, then entries that share or overrun their data."""
    declared = sum(i.file_size for i in entries)
    if declared > limits.max_total_bytes:
        largest = sorted(entries, key=lambda i: (-i.file_size, i.filename))[:3]
        named = ", ".join(f"{display_name(i.filename)} ({size_text(i.file_size)})" for i in largest)
        raise BadPredictionInput(f"the zip expands to {size_text(declared)} and the limit is "
                                 f"{size_text(limits.max_total_bytes)} (the largest files: {named}); "
                                 "send fewer or smaller images")
    problem = overlap_problem(archive, data)
    if problem:
        raise BadPredictionInput(f"the zip is malformed: {problem}")


def _texts(data: bytes) -> Iterator[Item]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadPredictionInput("the CSV is not UTF-8 text; save it as 'CSV UTF-8' and send it again") from None
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if r and r[0].strip()]
    except csv.Error as exc:
        raise BadPredictionInput(f"the CSV could not be read ({exc})") from None
    if rows and header_cell(rows[0][0]) in TEXT_HEADERS:  # a header as an upload's CSV may have
        rows = rows[1:]
    if len(rows) > MAX_BATCH:
        raise UsageError(f"predict NAME with a CSV of at most {MAX_BATCH} texts (this one has {len(rows)})")
    for row in rows:
        value = row[0]
        problem = f"longer than {MAX_TEXT_CHARS} characters" if len(value) > MAX_TEXT_CHARS else None
        yield Item(value[:200], text=None if problem else value, problem=problem)
