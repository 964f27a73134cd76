"""The sentiment CSV rules, hostile input included: one test per behaviour, driven through validate_dataset."""
from __future__ import annotations

import codecs
import csv
import io

import pytest

from platform_core.config import Limits
from platform_core.validation import ValidationReport, validate_dataset
from tests import gen

DEFAULT = Limits()


def check(data: bytes, limits: Limits = DEFAULT, filename: str = "reviews.csv") -> ValidationReport:
    return validate_dataset(data, filename, limits)


def codes(report: ValidationReport) -> list[str]:
    return [p.code for p in report.errors]


def error(report: ValidationReport, code: str) -> str:
    found = [p.message for p in report.errors if p.code == code]
    assert len(found) == 1, report.as_dict()
    return found[0]


def assert_rejected(report: ValidationReport) -> None:
    assert not report.valid and report.normalised is None, report.as_dict()


def stored_rows(report: ValidationReport) -> list[list[str]]:
    assert report.valid and report.normalised is not None, report.as_dict()
    return list(csv.reader(io.StringIO(report.normalised.decode("utf-8"), newline="")))


def two_labels(**kw) -> bytes:
    return gen.csv_bytes({"positive": 100, "negative": 100}, **kw)


def with_rows(extra: list[list[str]], header: tuple[str, ...] | None = ("text", "label")) -> bytes:
    """100 good rows per label after ``extra``, so the extra rows sit on known lines."""
    return gen.csv_bytes(rows=extra + gen.csv_rows({"positive": 100, "negative": 100}), header=header)


# ---------------------------------------------------------------- encodings and bytes


def test_utf8_csv_without_bom_is_accepted() -> None:
    report = check(two_labels())
    assert report.valid, report.as_dict()
    assert report.classes == {"negative": 100, "positive": 100}


def test_utf8_csv_with_bom_is_accepted_and_its_header_recognised() -> None:
    data = two_labels(encoding="utf-8-sig")
    assert data.startswith(codecs.BOM_UTF8)
    report = check(data)
    assert report.valid and stored_rows(report)[0] == ["text", "label"]
    assert len(stored_rows(report)) == 201


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_its_bom_is_accepted_and_stored_as_utf8(encoding: str) -> None:
    rows = gen.csv_rows({"positive": 100, "negative": 100})
    rows[0][0] = "Café « ça » 😀"
    report = check(gen.csv_bytes(rows=rows, encoding=encoding))
    assert report.valid, report.as_dict()
    assert ["Café « ça » 😀", rows[0][1]] in stored_rows(report)


def test_utf16_without_a_bom_is_rejected_with_save_as_utf8_advice() -> None:
    report = check(gen.csv_text(gen.csv_rows({"positive": 100, "negative": 100})).encode("utf-16-le"))
    assert_rejected(report)
    assert "UTF-8" in report.errors[0].message


def test_cp1252_csv_is_rejected_with_save_as_utf8_advice_naming_the_line() -> None:
    rows = gen.csv_rows({"positive": 100, "negative": 100})
    rows[4][0] = "Le café était “très” bon"
    report = check(gen.csv_bytes(rows=rows, encoding="cp1252"))
    assert_rejected(report)
    message = error(report, "encoding")
    assert "UTF-8" in message and "line 6" in message
    assert "UnicodeDecodeError" not in message and "codec" not in message


def test_damaged_utf16_is_rejected_with_advice_not_an_exception() -> None:
    data = gen.encode("text,label\nok,positive\n", "utf-16-le") + b"\x00\xd8"  # a lone surrogate
    report = check(data)
    assert codes(report) == ["encoding"] and "UTF-8" in report.errors[0].message


def test_nul_byte_is_rejected_naming_the_line() -> None:
    data = with_rows([["ok", "positive"], ["fine", "negative"]]).replace(b"fine", b"fi\x00ne", 1)
    report = check(data)
    assert_rejected(report)
    message = error(report, "nul_byte")
    assert "line 3" in message and "UTF-8" in message


def test_unbalanced_quote_is_rejected_naming_the_line_it_opens_on() -> None:
    report = check(with_rows([["fine", "positive"]]).replace(b"fine", b'"never closed', 1))
    assert_rejected(report)
    assert report.errors[0].where == "line 2"
    assert "missing closing double quote" in error(report, "csv_syntax")


def test_text_after_a_closing_quote_is_rejected_by_strict_parsing() -> None:
    report = check(b'text,label\n"quoted"then more,positive\n' + two_labels(header=None))
    assert codes(report) == ["csv_syntax"] and report.errors[0].where == "line 2"


def test_field_over_the_size_cap_is_a_row_error_naming_the_line() -> None:
    report = check(with_rows([["x" * 201, "positive"]]), Limits(max_field_chars=200))
    assert_rejected(report)
    assert error(report, "row") == "Row has a field longer than 200 characters: line 2."


def test_field_over_the_csv_module_limit_is_rejected_not_raised() -> None:
    report = check(with_rows([["x" * 200_000, "positive"]]))
    assert codes(report) == ["csv_syntax"] and "longer than" in report.errors[0].message


def test_csv_over_the_row_cap_is_rejected() -> None:
    report = check(two_labels(), Limits(max_csv_rows=150))
    assert_rejected(report)
    assert "more than 150 rows" in error(report, "too_many_rows")


def test_csv_over_the_byte_cap_is_rejected_with_advice_about_rows_not_images() -> None:
    data = two_labels()
    report = check(data, Limits(max_csv_bytes=len(data) - 1))
    message = error(report, "file_too_large")
    assert "over the limit of" in message and "rows" in message and "image" not in message


# ---------------------------------------------------------------- header and labels


def test_csv_without_a_header_is_accepted() -> None:
    report = check(two_labels(header=None))
    assert report.valid and report.classes == {"negative": 100, "positive": 100}


def test_header_case_and_whitespace_are_normalised() -> None:
    report = check(two_labels(header=(" Text ", "LABEL")))
    assert report.valid and len(stored_rows(report)) == 201


def test_header_synonyms_and_extra_columns_are_accepted() -> None:
    rows = [[str(i), text, label] for i, (text, label) in enumerate(gen.csv_rows({"pos": 100, "neg": 100}))]
    report = check(gen.csv_bytes(rows=rows, header=("id", "Review", "Sentiment")))
    assert report.valid and report.classes == {"neg": 100, "pos": 100}


def test_numeric_labels_are_accepted_and_1_0_is_the_same_class_as_1() -> None:
    rows = gen.csv_rows({"0": 100, "1": 99}) + [["one more", "1.0"]]
    report = check(gen.csv_bytes(rows=rows))
    assert report.valid and report.classes == {"0": 100, "1": 100}


def test_labels_differing_in_case_and_whitespace_are_one_class() -> None:
    rows = gen.csv_rows({"positive": 50, "Positive ": 50, "negative": 100})
    report = check(gen.csv_bytes(rows=rows))
    assert report.valid and report.classes == {"negative": 100, "positive": 100}
    assert [w.code for w in report.warnings] == ["label_variants"]
    assert {row[1] for row in stored_rows(report)[1:]} == {"positive", "negative"}


# ---------------------------------------------------------------- class and row rules


def test_three_classes_are_accepted() -> None:
    assert check(gen.csv_bytes({"positive": 100, "negative": 100, "neutral": 100})).valid


def test_one_class_is_rejected() -> None:
    report = check(gen.csv_bytes({"positive": 200}))
    assert "Found 1 different label ('positive')" in error(report, "class_count")


def test_four_classes_are_rejected_listing_them() -> None:
    report = check(gen.csv_bytes({"a": 100, "b": 100, "c": 100, "d": 100}))
    assert "Found 4 different labels ('a', 'b', 'c', 'd'); a sentiment dataset needs 2 or 3" \
        in error(report, "class_count")


def test_class_with_99_rows_is_rejected_naming_the_label() -> None:
    report = check(gen.csv_bytes({"positive": 100, "negative": 99}))
    assert error(report, "class_size") == "Label 'negative' has 99 rows; each label needs 100 to 1000."
    assert report.errors[0].where == "negative"


def test_class_with_1001_rows_is_rejected_and_1000_accepted() -> None:
    assert check(gen.csv_bytes({"positive": 1000, "negative": 1000})).valid
    report = check(gen.csv_bytes({"positive": 1001, "negative": 1000}))
    assert "'positive' has 1001 rows" in error(report, "class_size")


def test_empty_text_rows_are_counted_and_reported_with_line_numbers() -> None:
    report = check(with_rows([["", "positive"], ["ok", "negative"], ["   ", "negative"]]))
    assert_rejected(report)
    assert error(report, "row") == "2 rows have empty text: lines 2, 4."


def test_empty_label_rows_are_counted_and_reported_with_line_numbers() -> None:
    report = check(with_rows([["no label", ""], ["ok", "negative"], ["blank label", " "]], header=None))
    assert error(report, "row") == "2 rows have an empty label: lines 1, 3."


def test_rows_with_the_wrong_number_of_fields_are_reported_with_line_numbers() -> None:
    report = check(with_rows([["a", "b", "positive"]]))
    assert error(report, "row").startswith("Row has 3 fields instead of 2")


def test_row_errors_name_the_line_a_multiline_row_starts_on() -> None:
    report = check(with_rows([["first line\nsecond line\nthird", "positive"], ["", "negative"]]))
    assert error(report, "row") == "Row has empty text: line 5."


def test_every_row_problem_is_listed_at_once() -> None:
    report = check(with_rows([["", "positive"], ["text", ""], ["x", "y", "z"]]))
    assert len([p for p in report.errors if p.code == "row"]) == 3


def test_header_only_csv_is_rejected_as_having_no_rows() -> None:
    report = check(b"text,label\n")
    assert codes(report) == ["no_rows"]


def test_blank_file_is_rejected_as_having_no_rows() -> None:
    assert codes(check(b"\n\n  \n")) == ["no_rows"]


# ---------------------------------------------------------------- what is stored


def test_normalised_csv_is_utf8_text_label_with_the_text_unchanged() -> None:
    tricky = ["=HYPERLINK(\"http://x\",\"click\")", "+1 great", "-terrible", "@SUM(A1)",
              "  spaced  ", "comma, inside", 'a "quoted" word', "two\nlines", "emoji 😀 café"]
    rows = [[t, "positive"] for t in tricky] + gen.csv_rows({"positive": 91, "negative": 100})
    report = check(gen.csv_bytes(rows=rows, header=("Sentence", " Sentiment ")))
    stored = stored_rows(report)
    assert stored[0] == ["text", "label"] and report.normalised_name == "data.csv"
    assert [r[0] for r in stored[1:10]] == tricky  # stored raw: escaping is for CSVs handed to people
    report.normalised.decode("utf-8")


def test_normalised_csv_stores_the_normalised_label() -> None:
    rows = gen.csv_rows({" POSITIVE": 100, "Negative": 100})
    assert {r[1] for r in stored_rows(check(gen.csv_bytes(rows=rows)))[1:]} == {"positive", "negative"}
