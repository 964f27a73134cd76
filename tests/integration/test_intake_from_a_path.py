"""Validation of an upload given as a file on disk (`mlbot validate PATH`, `mlbot upload --file`): a file over
the cap is refused from its size alone, before a byte of it is read."""
from __future__ import annotations

from pathlib import Path

import pytest

from platform_core.config import Limits
from platform_core.validation import validate_dataset
from tests.unit.test_csv_intake import codes, two_labels
from tests.unit.test_zip_intake import pets


@pytest.mark.parametrize("filename, content", [("big.zip", pets), ("big.csv", two_labels)])
def test_a_path_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path, monkeypatch, filename,
                                                                 content) -> None:
    path = tmp_path / filename
    path.write_bytes(content())
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the file was read"))
    report = validate_dataset(path, filename, Limits(max_archive_bytes=1000, max_csv_bytes=1000))
    assert codes(report) == ["file_too_large"]
