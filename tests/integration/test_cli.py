"""The `mlbot` command line: exit codes and --json shapes exactly as the README writes them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.console.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DATASET_FIELDS = {"name", "description", "dataset_path", "model_path", "vocab_path", "training_status",
                  "training_accuracy", "validation_accuracy", "tenant", "owner", "kind", "class_counts",
                  "model_version", "created_at", "updated_at"}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLBOT_USER", "ana")
    monkeypatch.delenv("MLBOT_BACKEND", raising=False)
    return tmp_path / "home"


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def run_json(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_validate_valid_zip_exits_0_with_the_json_shape(capsys) -> None:
    code, data = run_json(capsys, "validate", str(EXAMPLES / "fashion_small.zip"))
    assert code == 0
    assert {"valid", "kind", "classes", "errors", "warnings"} <= set(data)
    assert data["valid"] is True and data["kind"] == "image" and data["errors"] == []
    assert data["classes"] == {"bag": 30, "sneaker": 30, "trouser": 30, "tshirt_top": 30}


def test_validate_invalid_file_exits_1_and_lists_each_problem(capsys) -> None:
    code, text = run(capsys, "validate", str(EXAMPLES / "broken.zip"))
    assert code == 1
    assert "rejected, 4 problems" in text and "preview.png" in text and "sandal" in text
    code, data = run_json(capsys, "validate", str(EXAMPLES / "broken.csv"))
    assert code == 1 and data["valid"] is False and data["kind"] == "sentiment"
    assert any("UTF-8" in e for e in data["errors"])


def test_validate_refuses_a_huge_file_without_reading_it(capsys, tmp_path: Path) -> None:
    huge = tmp_path / "huge.zip"
    with open(huge, "wb") as f:
        f.truncate(4 * 1024**3)  # sparse: 4 GiB declared, nothing written
    code, data = run_json(capsys, "validate", str(huge))
    assert code == 1 and "4 GB" in data["errors"][0] and "50 MB" in data["errors"][0]


def test_archive_cap_is_configurable(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLBOT_MAX_ARCHIVE_MB", "nope")
    code, text = run(capsys, "validate", str(EXAMPLES / "fashion_small.zip"))
    assert code == 2 and "MLBOT_MAX_ARCHIVE_MB must be a whole number" in text


def test_missing_file_exits_1_and_bad_usage_exits_2(capsys) -> None:
    code, text = run(capsys, "validate", "no/such/file.zip")
    assert code == 1 and "no such file" in text
    with pytest.raises(SystemExit) as exc:
        main(["upload", str(EXAMPLES / "fashion_small.zip")])  # --name is required
    assert exc.value.code == 2


def test_upload_then_datasets_and_status_carry_the_dataset_fields(capsys) -> None:
    code, data = run_json(capsys, "upload", str(EXAMPLES / "movie_reviews.csv"), "--name", "reviews",
                          "--description", "movie snippets")
    assert code == 0 and data["stored"] is True and data["dataset"]["name"] == "reviews"
    code, listing = run_json(capsys, "datasets")
    assert code == 0 and [d["name"] for d in listing["datasets"]] == ["reviews"]
    assert DATASET_FIELDS <= set(listing["datasets"][0])
    code, status = run_json(capsys, "status", "reviews")
    assert code == 0 and DATASET_FIELDS <= set(status)
    assert status["training_status"] == "Training Not Started" and status["description"] == "movie snippets"
    assert status["tenant"] == "console:ana"


def test_rejected_upload_exits_1_and_stores_nothing(capsys, home: Path) -> None:
    code, data = run_json(capsys, "upload", str(EXAMPLES / "broken.zip"), "--name", "shoes")
    assert code == 1 and data["error"] == "rejected" and data["validation"]["valid"] is False
    code, listing = run_json(capsys, "datasets")
    assert listing["datasets"] == []
    assert not any((home / "blobs").rglob("*.zip"))


def test_status_of_an_unknown_dataset_exits_1(capsys) -> None:
    code, text = run(capsys, "status", "nothing")
    assert code == 1 and "no dataset named 'nothing'" in text


def test_another_console_user_has_separate_datasets(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(capsys, "upload", str(EXAMPLES / "fashion_small.zip"), "--name", "fashion")[0] == 0
    monkeypatch.setenv("MLBOT_USER", "ben")
    code, listing = run_json(capsys, "datasets")
    assert code == 0 and listing["datasets"] == []


def test_predict_needs_exactly_one_of_image_or_text_and_a_real_file(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["predict", "x"])
    assert exc.value.code == 2
    code, text = run(capsys, "predict", "x", "--image", "no/such.png")
    assert code == 1 and "no such file" in text
    code, data = run_json(capsys, "predict", "ghost", "--text", "hello")
    assert code == 1 and data["error"] == "not_found"
