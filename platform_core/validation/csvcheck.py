"""Validate a sentiment CSV (text,label): encoding, strict parsing, row errors, class rules."""
from __future__ import annotations

import codecs
import csv
import io
from collections import Counter, defaultdict

from platform_core.config import Limits
from platform_core.validation.report import DatasetKind, ValidationReport, plural, summarise_items

TEXT_HEADERS = {"text", "sentence", "review", "tweet", "content", "message", "comment", "document"}
LABEL_HEADERS = {"label", "sentiment", "class", "target", "category", "polarity", "labels"}
_SAVE_AS = "Save it as 'CSV UTF-8' and upload again."


def normalise_label(raw: str) -> str:
    """'Positive ' and 'positive' are one class; '1.0' and '1' too."""
    label = " ".join(raw.split()).lower()
    try:
        number = float(label)
    except ValueError:
        return label
    return str(int(number)) if number.is_integer() else label


def header_cell(raw: str) -> str:
    """A header cell as the header rule compares it (case, spacing and a BOM ignored)."""
    return " ".join(raw.split()).lower().lstrip("\ufeff")


def decode_text(data: bytes, report: ValidationReport) -> str | None:
    """UTF-8 with or without BOM, or UTF-16 by its BOM; anything else is refused with advice."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", data
    else:
        encoding, body = "utf-8", data[3:] if data.startswith(codecs.BOM_UTF8) else data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        # The line of the first bad byte: the text decoded so far is valid, count its line breaks.
        line = body[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        what = "UTF-8 text" if encoding == "utf-8" else "valid UTF-16 text despite its byte-order mark"
        report.error("encoding", f"The file is not {what} (an unreadable byte on line {line}). {_SAVE_AS}",
                     f"line {line}")
        return None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        report.error("nul_byte", f"The file contains a NUL byte on line {line}; it is not a plain CSV. {_SAVE_AS}",
                     f"line {line}")
        return None
    return text


def validate_csv(data: bytes, limits: Limits) -> ValidationReport:
    """Check every sentiment CSV rule (README "Datasets"; hostile input included); on success attach normalised UTF-8 text,label."""
    report = ValidationReport(kind=DatasetKind.SENTIMENT)
    text = decode_text(data, report)
    if text is None:
        return report
    rows = _parse(text, limits, report)
    if rows is None:
        return report
    text_idx, label_idx, width, body = _columns(rows) if rows else (0, 1, 2, [])
    if not body:
        report.error("no_rows", "The CSV has no data rows. Each line should be: text,label")
        return report
    kept, raw_labels = _rows(body, text_idx, label_idx, width, limits, report)
    _class_rules(kept, raw_labels, limits, report)
    if report.valid:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(kept)
        report.normalised = out.getvalue().encode("utf-8")
        report.normalised_name = "data.csv"
    return report


def _parse(text: str, limits: Limits, report: ValidationReport) -> list[tuple[int, list[str]]] | None:
    """Strictly parsed non-blank rows, each with the line it starts on (quoted text spans lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            if len(rows) >= limits.max_csv_rows:
                report.error("too_many_rows", f"The CSV has more than {limits.max_csv_rows} rows; a sentiment "
                             f"dataset has at most {limits.max_rows_per_class} per label.")
                return None
            if row and any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        detail = str(exc)
        if "field larger than field limit" in detail:
            reason = f"a field is longer than {csv.field_size_limit()} characters"
        else:
            reason = f"{detail} (check for a missing closing double quote)"
        report.error("csv_syntax", f"The CSV cannot be read from line {start}: {reason}.", f"line {start}")
        return None
    return rows


def _columns(rows: list[tuple[int, list[str]]]) -> tuple[int, int, int, list[tuple[int, list[str]]]]:
    """Find text and label columns from a header if there is one, else assume text,label."""
    first = [header_cell(c) for c in rows[0][1]]
    text_idx = next((i for i, c in enumerate(first) if c in TEXT_HEADERS), None)
    label_idx = next((i for i, c in enumerate(first) if c in LABEL_HEADERS), None)
    if text_idx is not None and label_idx is not None:
        return text_idx, label_idx, len(first), rows[1:]
    return 0, 1, 2, rows


def _rows(body: list[tuple[int, list[str]]], text_idx: int, label_idx: int, width: int, limits: Limits,
          report: ValidationReport) -> tuple[list[tuple[str, str]], dict[str, set[str]]]:
    """Rows kept as (raw text, normalised label); every broken row counted under its reason."""
    problems: dict[str, list[str]] = defaultdict(list)
    kept: list[tuple[str, str]] = []
    raw_labels: dict[str, set[str]] = defaultdict(set)
    for line, row in body:
        if len(row) != width:
            fields = plural(len(row), "field")
            advice = ("write text,label with a comma between them" if len(row) < width
                      else "put text that contains commas in double quotes")
            problems[f"{fields} instead of {width} ({advice})"].append(str(line))
            continue
        text, label = row[text_idx], row[label_idx]
        if max(len(text), len(label)) > limits.max_field_chars:
            problems[f"a field longer than {limits.max_field_chars} characters"].append(str(line))
            continue
        if not text.strip():
            problems["empty text"].append(str(line))
            continue
        if not label.strip():
            problems["an empty label"].append(str(line))
            continue
        norm = normalise_label(label)
        raw_labels[norm].add(label)
        kept.append((text, norm))
    if body and not kept and len(body) > 1:
        report.error("not_text_label", f"None of the {len(body)} rows is a usable text,label pair; "
                     "a sentiment dataset is a CSV with the text in one column and its label in the next.")
    for reason, lines in problems.items():
        has, where = ("row has", "line") if len(lines) == 1 else (f"{len(lines)} rows have", "lines")
        report.error("row", f"{has.capitalize()} {reason}: {where} {summarise_items(lines)}.", f"line {lines[0]}")
    return kept, raw_labels


def _class_rules(kept: list[tuple[str, str]], raw_labels: dict[str, set[str]], limits: Limits,
                 report: ValidationReport) -> None:
    counts = Counter(label for _, label in kept)
    report.classes = dict(sorted(counts.items()))
    n = len(counts)
    if kept and not (limits.min_text_classes <= n <= limits.max_text_classes):
        labels = summarise_items([repr(k) for k in sorted(counts)], 5)
        hint = " Is the label in the second column?" if n > 20 else ""
        report.error("class_count", f"Found {plural(n, 'different label')} ({labels}); a sentiment dataset needs "
                     f"{limits.min_text_classes} or {limits.max_text_classes}.{hint}")
    elif kept:
        for label, count in sorted(counts.items()):
            if not (limits.min_rows_per_class <= count <= limits.max_rows_per_class):
                report.error("class_size", f"Label '{label}' has {plural(count, 'row')}; each label needs "
                             f"{limits.min_rows_per_class} to {limits.max_rows_per_class}.", label)
    for label, variants in sorted(raw_labels.items()):
        if len(variants) > 1:
            shown = ", ".join(repr(v) for v in sorted(variants)[:4])
            report.warn("label_variants", f"Labels {shown} were treated as one class '{label}'.")
    if n >= 2 and max(counts.values()) > limits.max_imbalance * min(counts.values()):
        report.warn("imbalance", f"Labels are imbalanced ({max(counts.values())} vs {min(counts.values())} rows); "
                    "accuracy on the rare label may suffer.")
    _warn_duplicates(kept, report)


def _warn_duplicates(kept: list[tuple[str, str]], report: ValidationReport) -> None:
    labels_by_text: dict[str, set[str]] = defaultdict(set)
    occurrences = Counter(text for text, _ in kept)
    for text, label in kept:
        labels_by_text[text].add(label)
    dupes = sum(c - 1 for c in occurrences.values() if c > 1)
    if dupes:
        report.warn("duplicate_rows", f"{plural(dupes, 'row')} repeat{'s' if dupes == 1 else ''} a text "
                    "that appears earlier.")
    conflicting = [t for t, labels in labels_by_text.items() if len(labels) > 1]
    if conflicting:
        sample = summarise_items([repr(t[:40]) for t in conflicting], 3)
        verb = "appears" if len(conflicting) == 1 else "appear"
        report.warn("conflicting_labels", f"{plural(len(conflicting), 'text')} {verb} with different labels: {sample}.")
