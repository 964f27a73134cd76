"""The trainer's Flask app through its test client: 202 with a job id, training off the request thread,
idempotent job ids, clear 4xx answers, and predictions from the stored model."""
from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from bot.wiring import build_services
from handlers.commands import Attachment, Command
from handlers.upload import handle_upload
from platform_core.config import Settings
from platform_core.records import TrainingStatus
from tests.fakes import FakeTrainer, png
from tests.integration.test_trainer_runner import _zip
from trainer_ec2.app import create_app
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:T1"


@pytest.fixture
def trainer_app(tmp_path: Path):
    settings = Settings(backend="local", home=tmp_path / "home")
    trainer = FakeTrainer(["red", "green", "blue"])
    ctx = build_trainer_context(settings, trainers={"image": trainer, "sentiment": trainer})
    services = build_services(settings, launcher=lambda job: None)
    assert handle_upload(Command("upload", TENANT, "u1", ("colours",), Attachment("c.zip", _zip())), services).ok
    app = create_app(ctx)
    return app.test_client(), ctx, trainer, app.extensions["mlbot_drainer"]


def _wait_idle(drainer, timeout: float = 20) -> None:
    end = time.time() + timeout
    while drainer.busy() and time.time() < end:
        time.sleep(0.02)


def test_health_answers_with_the_machine_state(trainer_app) -> None:
    client, ctx, _, _ = trainer_app
    body = client.get("/health").get_json()
    assert body == {"status": "ok", "machine": "local", "state": "Free", "job": None, "queued": 0}


def test_train_answers_202_at_once_and_trains_off_the_request_thread(trainer_app) -> None:
    client, ctx, trainer, drainer = trainer_app
    trainer.release.clear()  # hold the training so the answer provably comes first
    response = client.post("/train_image_classification", json={"tenant": TENANT, "name": "colours"})
    assert response.status_code == 202
    job_id = response.get_json()["job_id"]
    assert trainer.started.wait(10)
    assert ctx.records.get(TENANT, "colours").training_status == TrainingStatus.IN_PROGRESS.value
    assert client.get("/health").get_json()["state"] == "Busy"
    trainer.release.set()
    _wait_idle(drainer)
    assert ctx.jobs.get(job_id).state == "succeeded"
    assert ctx.records.get(TENANT, "colours").training_status == TrainingStatus.SUCCESSFUL.value


def test_the_same_job_id_posted_twice_trains_once(trainer_app) -> None:
    client, _, trainer, drainer = trainer_app
    for _ in range(2):
        r = client.post("/train_image_classification", json={"tenant": TENANT, "name": "colours", "job_id": "j-1"})
        assert r.status_code == 202 and r.get_json()["job_id"] == "j-1"
        _wait_idle(drainer)
    assert len(trainer.calls) == 1


@pytest.mark.parametrize("path, body, status, code", [
    ("/train_image_classification", None, 400, "bad_request"),
    ("/train_image_classification", {"tenant": TENANT, "name": "nope"}, 404, "not_found"),
    ("/train_image_classification", {"tenant": "slack:OTHER", "name": "colours"}, 404, "not_found"),
    ("/train_sentiment_analysis", {"tenant": TENANT, "name": "colours"}, 400, "wrong_kind"),
    ("/train_image_classification", {"tenant": TENANT, "name": "colours", "recipe": "magic"}, 400, "wrong_kind"),
    ("/train_image_classification", {"tenant": TENANT, "name": "../x"}, 400, "invalid_name"),
])
def test_bad_train_requests_get_a_clear_4xx(trainer_app, path, body, status, code) -> None:
    client, _, trainer, _ = trainer_app
    response = client.post(path, json=body) if body is not None else client.post(path, data="not json")
    assert response.status_code == status and response.get_json()["error"] == code
    assert response.get_json()["message"]
    assert trainer.calls == []


def test_predict_answers_from_the_stored_model(trainer_app) -> None:
    client, _, _, drainer = trainer_app
    client.post("/train_image_classification", json={"tenant": TENANT, "name": "colours"})
    _wait_idle(drainer)
    image = base64.b64encode(png((10, 240, 10))).decode()
    answer = client.post("/predict_image_classification", json={"tenant": TENANT, "name": "colours", "image": image})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["label"] == "green" and 0.33 < body["confidence"] <= 1 and body["model_version"] == 1
    assert [label for label, _ in body["top"]][0] == "green" and len(body["top"]) == 3


@pytest.mark.parametrize("body, status, code", [
    ({"tenant": TENANT, "name": "colours", "image": "%%%"}, 400, "bad_input"),
    ({"tenant": TENANT, "name": "colours", "image": base64.b64encode(b"not an image").decode()}, 400, "bad_input"),
    ({"tenant": TENANT, "name": "colours"}, 400, "bad_input"),
    ({"tenant": TENANT, "name": "ghost", "text": "hi"}, 404, "not_found"),
])
def test_bad_predictions_get_an_error_object(trainer_app, body, status, code) -> None:
    client, _, _, drainer = trainer_app
    client.post("/train_image_classification", json={"tenant": TENANT, "name": "colours"})
    _wait_idle(drainer)
    response = client.post("/predict_image_classification", json=body)
    assert response.status_code == status and response.get_json()["error"] == code


def test_predict_before_training_says_to_train_first(trainer_app) -> None:
    client, _, _, _ = trainer_app
    response = client.post("/predict_image_classification",
                           json={"tenant": TENANT, "name": "colours", "image": base64.b64encode(png((1, 1, 1))).decode()})
    assert response.status_code == 400 and response.get_json()["error"] == "not_trained"
    assert "Train it first" in response.get_json()["message"]
