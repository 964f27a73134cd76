"""`mlbot demo` as a new user runs it: a fresh process, a fresh home, the installed command."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

MLBOT = Path(sys.executable).with_name("mlbot")


def _demo(tmp_path: Path, *extra: str, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLBOT_HOME=str(tmp_path / "home"))
    return subprocess.run([str(MLBOT), "demo", *extra], env=env, capture_output=True, text=True, timeout=timeout)


def _listing(tmp_path: Path) -> str:
    env = dict(os.environ, MLBOT_HOME=str(tmp_path / "home" / "demo"), MLBOT_USER="demo")
    done = subprocess.run([str(MLBOT), "datasets", "--json"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0
    return done.stdout


@pytest.mark.slow  # the installed command, in a process of its own
def test_demo_without_training_validates_stores_and_refuses(tmp_path: Path) -> None:
    done = _demo(tmp_path, "--no-train", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Stored image dataset 'fashion'" in out and "Stored sentiment dataset 'reviews'" in out
    assert "The dataset was not stored: 4 problems to fix." in out
    assert "not UTF-8" in out and "Only the person who uploaded 'fashion' or an admin of this chat" in out
    assert "Demo finished" in out
    listing = _listing(tmp_path)
    assert '"name": "fashion"' in listing and '"name": "reviews"' in listing


@pytest.mark.slow
def test_full_demo_trains_both_examples_with_progress_and_metrics(tmp_path: Path) -> None:
    done = _demo(tmp_path, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Queued 'fashion' for training (image, fast recipe)" in out
    assert "Training 'fashion' [" in out and "epoch 1/" in out  # the progress message, edited per epoch
    assert "Training 'fashion' finished: validation accuracy" in out
    assert "Training 'reviews' finished: validation accuracy" in out
    assert "Per class, precision / recall" in out
    assert (tmp_path / "home" / "demo" / "outbox" / "fashion-confusion-matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "demo> predict fashion --file examples/sneaker.png\n  mlbot: sneaker (" in out
    assert "confident, model version 1" in out
    exported = tmp_path / "home" / "demo" / "outbox" / "fashion-v1.zip"  # the model, ready to leave the chat
    assert "Here is 'fashion' model version 1" in out and zipfile.is_zipfile(exported)
    called = out[out.index("code> curl"):]  # the demo ends by calling the REST API once, over HTTP
    assert "/v1/datasets/reviews/predict" in called and "HTTP 200: {" in called and '"label": "positive"' in called
    assert '"training_status": "Training Successful"' in _listing(tmp_path)
