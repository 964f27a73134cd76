"""Handlers reach a remote trainer over HTTP: the job is queued, POSTed by id, and trained there once."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from bot.wiring import build_services
from handlers.commands import Attachment, Command
from handlers.train import handle_train
from handlers.upload import handle_upload
from platform_core.adapters.launchers import HttpLauncher
from platform_core.config import Settings
from platform_core.records import TrainingStatus
from tests.fakes import FakeTrainer
from tests.integration.test_trainer_runner import _zip
from trainer_ec2.app import create_app
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:T9"


@pytest.fixture
def served_trainer(tmp_path: Path):
    settings = Settings(backend="local", home=tmp_path / "home")
    trainer = FakeTrainer()
    app = create_app(build_trainer_context(settings, trainers={"image": trainer, "sentiment": trainer}))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield settings, f"http://127.0.0.1:{server.server_port}", trainer
    server.shutdown()


def test_a_train_command_is_posted_to_the_trainer_and_trained_once(served_trainer) -> None:
    settings, url, trainer = served_trainer
    services = build_services(settings, launcher=HttpLauncher(url))
    assert handle_upload(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    reply = handle_train(Command("train", TENANT, "u", ("c",)), services)
    assert reply.ok, reply.text
    deadline = time.time() + 20
    while services.jobs.get(reply.data["job_id"]).state != "succeeded":
        assert time.time() < deadline, services.jobs.get(reply.data["job_id"])
        time.sleep(0.05)
    assert len(trainer.calls) == 1
    assert services.records.get(TENANT, "c").training_status == TrainingStatus.SUCCESSFUL.value


def test_an_unreachable_trainer_leaves_the_job_queued_and_says_so(tmp_path: Path) -> None:
    settings = Settings(backend="local", home=tmp_path / "home")
    services = build_services(settings, launcher=HttpLauncher("http://127.0.0.1:9", timeout_s=1))
    assert handle_upload(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    reply = handle_train(Command("train", TENANT, "u", ("c",)), services)
    assert not reply.ok and "could not be reached yet" in reply.text
    assert services.records.get(TENANT, "c").training_status == TrainingStatus.QUEUED.value
    assert [j.name for j in services.jobs.queued()] == ["c"]
