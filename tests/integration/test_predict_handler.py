"""The inference Lambda's handler: its event contract and every bad input as an error object on the in-memory
fakes; the deployed entry building its stores from the environment, and images by key, on every backend
(the fakes, the local files and S3 on moto); the AWS invoke adapter, and mlbot's in-process path through
the same function."""
from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from moto import mock_aws
from PIL import Image

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from lambda_predict import handler as lambda_handler
from lambda_predict.handler import InProcessPredictions, answer
from lambda_predict.predictor import Predictor
from platform_core.backend import Backend
from platform_core.config import Settings
from platform_core.errors import DatasetNotFound, PredictionFailed
from platform_core.adapters.local_events import LocalEventBus
from platform_core.prediction import (MAX_INLINE_IMAGE_BYTES, input_prefix, request_event,
                                      result)
from tests import infra
from tests.backends import EVERY_BACKEND
from tests.fakes import FakeTrainer, png
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TENANT = "telegram:42"
RED = png((250, 5, 5))


class World:
    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.trainer = FakeTrainer(["red", "green", "blue"])
        self.ctx = build_trainer_context(settings, events=LocalEventBus(), backend=backend,
                                         trainers={"image": self.trainer, "sentiment": self.trainer})
        self.services = build_services(settings, launcher=lambda job: None, backend=backend)
        self.predictor = Predictor(blobs=self.ctx.blobs, records=self.ctx.records)

    def upload(self, name: str) -> None:
        assert dispatch(Command("upload", TENANT, "u", (name,), Attachment("c.zip", _zip())), self.services).ok

    def train(self, name: str) -> None:
        assert dispatch(Command("train", TENANT, "u", (name,)), self.services).ok
        drain(self.ctx)

    def ask(self, **event) -> dict:
        return answer({"tenant": TENANT, "dataset": "colours", **event}, self.predictor, self.ctx.blobs)


def trained_world(settings: Settings, backend: Backend | None = None) -> World:
    built = World(settings, backend)
    built.upload("colours")
    built.train("colours")
    return built


@pytest.fixture(autouse=True)
def fresh_container(monkeypatch):
    """Each test is a cold Lambda container: the handler builds its stores from the environment."""
    monkeypatch.setattr(lambda_handler, "_runtime", None)


@pytest.fixture
def local_world(tmp_path: Path, monkeypatch) -> World:
    settings = Settings(backend="local", home=tmp_path / "home")
    monkeypatch.setenv("MLBOT_BACKEND", "local")
    monkeypatch.setenv("MLBOT_HOME", str(settings.home))
    return trained_world(settings)


@pytest.fixture
def world(request: pytest.FixtureRequest, monkeypatch, fresh_container) -> Iterator[World]:
    """A trained 'colours' on the fakes, or on the backend a test names (``on_every_backend``)."""
    kind = getattr(request, "param", "memory")
    if kind == "memory":
        backend = MemoryBackend()
        built = trained_world(backend.settings, backend)
        # A warm container over the fakes: the environment cannot name them.
        monkeypatch.setattr(lambda_handler, "_runtime", (built.predictor, built.ctx.blobs))
        yield built
        return
    if kind == "local":
        yield request.getfixturevalue("local_world")
        return
    request.getfixturevalue("aws_credentials")
    request.getfixturevalue("atomic_moto_writes")
    with mock_aws():
        settings = infra.deploy(Settings(backend="aws", bucket="mlbot-predict-test", region="us-east-1"))
        monkeypatch.setenv("MLBOT_BACKEND", "aws")
        monkeypatch.setenv("MLBOT_BUCKET", settings.bucket)
        yield trained_world(settings)


on_every_backend = pytest.mark.parametrize("world", EVERY_BACKEND, indirect=True)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@on_every_backend
def test_the_lambda_entry_answers_label_confidence_top_and_version(world: World) -> None:
    out = lambda_handler.handler({"tenant": TENANT, "dataset": "Colours", "image_base64": b64(RED), "top": 2}, None)
    assert out["ok"] is True and out["label"] == "red" and out["dataset"] == "colours"
    assert out["model_version"] == 1 and 0.5 < out["confidence"] <= 1.0
    assert [label for label, _ in out["top"]] == ["red", out["top"][1][0]] and len(out["top"]) == 2
    assert json.loads(json.dumps(out)) == out  # what Lambda serialises


@pytest.mark.parametrize("event, code, words", [
    ({"image_base64": b64(b"%PDF-1.4 not an image")}, "bad_input", "not a readable image"),
    ({"image_base64": "@@@ not base64 @@@"}, "bad_input", "not valid base64"),
    ({"image_base64": ""}, "bad_input", "empty"),
    ({"image_base64": "A" * (28 * 1024 * 1024)}, "bad_input", "at most 20 MB"),
    ({"text": "   "}, "bad_input", "send an image"),  # an image model, and an empty text
    ({"text": "hello"}, "bad_input", "send an image"),
    ({}, "bad_input", "exactly one"),
    ({"text": "x", "image_base64": b64(RED)}, "bad_input", "exactly one"),
    ({"image_base64": b64(RED), "dataset": "nothing-here"}, "not_found", "nothing-here"),
    ({"image_base64": b64(RED), "tenant": "slack:OTHER"}, "not_found", "colours"),  # not theirs: not there
    ({"image_base64": b64(RED), "dataset": "../colours"}, "invalid_name", "not a usable dataset name"),
    ({"image_base64": b64(RED), "top": 0}, "usage", "top"),
    ({"image_base64": b64(RED), "top": "3"}, "usage", "top"),
    ({"image_key": "predict-inputs/slack:OTHER/x"}, "bad_input", "this workspace"),
    ({"image_key": f"predict-inputs/{TENANT}/missing"}, "bad_input", "send it again"),
    ({"image_key": f"predict-inputs/{TENANT}/../../models/x"}, "bad_input", "this workspace"),
])
def test_every_bad_input_gets_an_error_object_with_a_sentence(world: World, event, code, words) -> None:
    out = world.ask(**event)
    assert out["ok"] is False and set(out) == {"ok", "error"}
    assert out["error"]["code"] == code, out
    assert words in out["error"]["message"] and "Traceback" not in out["error"]["message"]


def test_events_that_are_not_objects_and_missing_fields_are_refused(world: World) -> None:
    for event in (None, "text", [], {"dataset": "colours", "text": "x"}, {"tenant": TENANT, "text": "x"},
                  {"tenant": 5, "dataset": "colours", "text": "x"}):
        out = answer(event, world.predictor, world.ctx.blobs)
        assert out["ok"] is False and out["error"]["code"] == "usage"


def test_a_dataset_never_trained_says_to_train_it(world: World) -> None:
    world.upload("fresh")
    out = world.ask(dataset="fresh", image_base64=b64(RED))
    assert out["error"]["code"] == "not_trained" and "train fresh" in out["error"]["message"]


def test_an_image_over_the_pixel_bound_is_refused_without_decoding(world: World) -> None:
    huge = io.BytesIO()
    Image.new("L", (10_000, 5_000)).save(huge, "PNG")  # 50 megapixels in a small file
    assert len(huge.getvalue()) < 1024 * 1024
    out = world.ask(image_base64=b64(huge.getvalue()))
    assert out["error"]["code"] == "bad_input" and "too large" in out["error"]["message"]


def test_a_fault_comes_back_as_an_internal_error_without_a_trace(world: World, monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(world.predictor, "predict", broken)
    with caplog.at_level(logging.ERROR, logger="lambda_predict.handler"):
        out = world.ask(image_base64=b64(RED))
    assert out == {"ok": False, "error": {"code": "internal", "message":
                                          "The prediction failed on our side; try again in a minute."}}
    assert "secret internals" in caplog.text  # logged for the operator, never sent to the user


@on_every_backend
def test_a_large_image_travels_by_key_under_the_tenants_prefix_and_is_deleted(world: World) -> None:
    photo = io.BytesIO()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, (1500, 1500, 3), dtype=np.uint8)
    noise[..., 0] += 200  # red, with enough noise that the PNG is over the inline limit
    Image.fromarray(noise).save(photo, "PNG")
    data = photo.getvalue()
    assert len(data) > MAX_INLINE_IMAGE_BYTES
    event = request_event(TENANT, "colours", image=data, blobs=world.ctx.blobs, new_id=lambda: "p1")
    assert event == {"tenant": TENANT, "dataset": "colours", "image_key": input_prefix(TENANT) + "p1"}
    assert world.ctx.blobs.exists(event["image_key"])
    out = answer(event, world.predictor, world.ctx.blobs)
    assert out["ok"] and out["label"] == "red"
    assert not world.ctx.blobs.exists(event["image_key"])  # read once, then gone
    small = request_event(TENANT, "colours", image=RED, blobs=world.ctx.blobs)
    assert base64.b64decode(small["image_base64"]) == RED and "image_key" not in small


def test_a_retrain_is_served_from_the_next_request_and_the_container_keeps_one_model(world: World) -> None:
    assert lambda_handler.handler({"tenant": TENANT, "dataset": "colours", "image_base64": b64(RED)})["label"] == "red"
    cached = lambda_handler._runtime[0]._cache
    first = list(cached)
    world.trainer.classes = ["rouge", "vert", "bleu"]
    world.train("colours")
    again = lambda_handler.handler({"tenant": TENANT, "dataset": "colours", "image_base64": b64(RED)})
    assert again["label"] == "rouge" and again["model_version"] == 2
    assert len(cached) == 1 and list(cached) != first


def test_mlbot_predict_goes_through_the_handler_in_process(local_world: World, monkeypatch) -> None:
    world = local_world
    assert isinstance(world.services.predictor, InProcessPredictions)
    calls = []
    monkeypatch.setattr("lambda_predict.handler.answer", lambda *a: calls.append(a) or answer(*a))
    reply = dispatch(Command("predict", TENANT, "u", ("colours",), Attachment("r.png", RED)), world.services)
    assert reply.ok and reply.data["label"] == "red" and calls and calls[0][0]["dataset"] == "colours"
    refused = dispatch(Command("predict", "console:someone", "u", ("colours",), Attachment("r.png", RED)),
                             world.services)
    assert not refused.ok and "colours" in refused.text


class FakeLambda:
    """boto3's Lambda client for one function: runs the handler as the Lambda service would."""

    def __init__(self, failure: str | None = None) -> None:
        self.failure, self.calls = failure, []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict:
        self.calls.append((FunctionName, InvocationType, len(Payload)))
        assert len(Payload) <= 6 * 1024 * 1024, "over Lambda's synchronous payload limit"
        if self.failure:
            body = {"errorMessage": self.failure, "errorType": "Runtime.ExitError"}
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(body).encode())}
        out = lambda_handler.handler(json.loads(Payload), None)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(out).encode())}


def test_the_aws_adapter_invokes_the_function_and_passes_its_errors_on(world: World) -> None:
    from platform_core.adapters.aws_predict import LambdaPredictions

    client = FakeLambda()
    service = LambdaPredictions(function="mlbot-predict", blobs=world.ctx.blobs, client=client)
    assert service.predict(TENANT, "colours", image=RED)["label"] == "red"
    with pytest.raises(PredictionFailed) as caught:
        service.predict(TENANT, "nope", image=RED)
    assert caught.value.code == "not_found" and "nope" in caught.value.user_message()
    crashed = LambdaPredictions(function="mlbot-predict", blobs=world.ctx.blobs, client=FakeLambda("killed"))
    with pytest.raises(PredictionFailed, match="did not finish"):
        crashed.predict(TENANT, "colours", image=RED)
    assert client.calls[0][:2] == ("mlbot-predict", "RequestResponse")


def test_result_passes_answers_and_raises_error_objects() -> None:
    assert result({"ok": True, "label": "a"}) == {"label": "a"}
    for bad in (None, [], {"ok": False}, {"ok": False, "error": "x"}):
        with pytest.raises(PredictionFailed):
            result(bad)
    error = DatasetNotFound("shoes")
    with pytest.raises(PredictionFailed) as caught:
        result({"ok": False, "error": {"code": error.code, "message": error.user_message()}})
    assert caught.value.user_message() == error.user_message()
