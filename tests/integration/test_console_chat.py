"""`mlbot chat`, as a person types into it: commands, a file by path, a notification as training ends."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.console.chat import run_chat, split_file
from platform_core.config import Settings
from tests.fakes import FakeTrainer
from tests.integration.test_trainer_runner import _zip

MLBOT = Path(sys.executable).with_name("mlbot")


def test_file_paths_are_taken_out_of_the_line_anywhere() -> None:
    assert split_file("upload digits --file ./d.zip my digits") == ("upload digits my digits", Path("./d.zip"))
    assert split_file('predict x --file "my photo.png"') == ("predict x", Path("my photo.png"))
    assert split_file("datasets") == ("datasets", None)


def test_a_typed_session_answers_each_line_and_waits_for_training_before_leaving(tmp_path: Path, monkeypatch) -> None:
    from trainer_ec2 import wiring

    build = wiring.build_trainer_context
    fake = FakeTrainer(["red", "green", "blue"])  # the session trains in a thread of its own: a fake, no torch
    monkeypatch.setattr(wiring, "build_trainer_context",
                        lambda *a, **kw: build(*a, **kw, trainers={"image": fake, "sentiment": fake}))
    archive = tmp_path / "colours.zip"
    archive.write_bytes(_zip())
    lines = io.StringIO(f"help\nupload colours --file {archive} swatches\nupload x --file {tmp_path}/none.zip\n"
                        "datasets\nbogus\ntrain colours\nquit\n")
    fake.release.clear()  # training is held until the chat says it waits for it, whatever the threads' pace

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            if "waiting for it to finish" in text:
                fake.release.set()
            return super().write(text)
    out = Out()
    assert run_chat(Settings(backend="local", home=tmp_path / "home"), tenant="console:ada", user="ada",
                    stdin=lines, out=out) == 0
    text = out.getvalue()
    assert "I train image and text classifiers" in text
    assert "Stored image dataset 'colours'" in text and "Next: train colours" in text
    assert f"There is no file at {tmp_path}/none.zip." in text
    assert "- colours (image, 3 classes, 30 examples)" in text
    assert "I don't know 'bogus'" in text
    assert "Training is still running here; waiting for it to finish" in text
    assert "Training 'colours' finished: validation accuracy" in text  # the notification, before leaving
    assert (tmp_path / "home" / "outbox" / "colours-confusion-matrix.png").exists()
    assert len(fake.calls) == 1


@pytest.mark.slow  # the installed command, in a process of its own
def test_the_installed_command_reads_commands_from_a_pipe(tmp_path: Path) -> None:
    env = dict(os.environ, MLBOT_HOME=str(tmp_path / "home"), MLBOT_USER="ada")
    done = subprocess.run([str(MLBOT), "chat"], input="datasets\nquit\n", capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "mlbot chat as console:ada" in done.stdout and "No datasets yet" in done.stdout
