"""Predictions from stored models (on the in-memory fakes): keyed by version, the last good model serves during
retraining."""
from __future__ import annotations

import pytest

from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from lambda_predict.predictor import Predictor
from platform_core.errors import BadPredictionInput, DatasetNotFound, ModelNotTrained
from tests.fakes import FakeTrainer, png
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend, memory_services
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:T5"


@pytest.fixture
def setup():
    backend = MemoryBackend()
    trainer = FakeTrainer(["red", "green", "blue"])
    ctx = build_trainer_context(backend.settings, backend=backend, trainers={"image": trainer, "sentiment": trainer})
    services = memory_services(backend)
    assert dispatch(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    return ctx, services, trainer, Predictor(blobs=ctx.blobs, records=ctx.records)


def _train(ctx, services) -> None:
    assert dispatch(Command("train", TENANT, "u", ("c",)), services).ok
    drain(ctx)


def test_a_new_version_is_used_from_the_next_request_on(setup) -> None:
    ctx, services, trainer, predictor = setup
    _train(ctx, services)
    first = predictor.predict(TENANT, "c", image=png((250, 5, 5)))
    assert first["label"] == "red" and first["model_version"] == 1
    trainer.classes = ["rouge", "vert", "bleu"]
    _train(ctx, services)
    second = predictor.predict(TENANT, "c", image=png((250, 5, 5)))
    assert second["label"] == "rouge" and second["model_version"] == 2
    assert list(predictor._cache) == [ctx.records.get(TENANT, "c").model_path]


def test_a_prediction_during_retraining_uses_the_last_good_model(setup) -> None:
    ctx, services, trainer, predictor = setup
    _train(ctx, services)
    trainer.release.clear()
    assert dispatch(Command("train", TENANT, "u", ("c",)), services).ok
    import threading

    worker = threading.Thread(target=drain, args=(ctx,))
    worker.start()
    assert trainer.started.wait(10)
    during = predictor.predict(TENANT, "c", image=png((5, 5, 250)))
    assert during["label"] == "blue" and during["model_version"] == 1
    trainer.release.set()
    worker.join(20)


def test_prediction_errors_are_clear(setup) -> None:
    ctx, services, _, predictor = setup
    with pytest.raises(ModelNotTrained):
        predictor.predict(TENANT, "c", image=png((1, 1, 1)))
    _train(ctx, services)
    with pytest.raises(DatasetNotFound):
        predictor.predict("slack:OTHER", "c", image=png((1, 1, 1)))  # another tenant sees nothing
    with pytest.raises(BadPredictionInput):
        predictor.predict(TENANT, "c", image=b"GIF89a not really")
    with pytest.raises(BadPredictionInput):
        predictor.predict(TENANT, "c", text="an image model gets text")


def test_the_predict_command_answers_label_and_confidence_and_refuses_clearly(setup) -> None:

    ctx, services, _, predictor = setup
    services.predictor = predictor
    not_yet = dispatch(Command("predict", TENANT, "u", ("c",), Attachment("x.png", png((250, 5, 5)))), services)
    assert not not_yet.ok and "Train it first" in not_yet.text
    _train(ctx, services)
    reply = dispatch(Command("predict", TENANT, "u", ("c",), Attachment("x.png", png((250, 5, 5)))), services)
    assert reply.ok and reply.text.startswith("red (") and reply.data["label"] == "red"
    assert set(reply.data) >= {"label", "confidence", "top", "model_version"}
    text_to_image_model = dispatch(Command("predict", TENANT, "u", ("c", "hello", "there")), services)
    assert not text_to_image_model.ok and "send an image" in text_to_image_model.text
    usage = dispatch(Command("predict", TENANT, "u", ()), services)
    assert not usage.ok and usage.text.startswith("Usage: predict NAME")
