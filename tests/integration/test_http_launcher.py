"""Handlers reach a remote trainer over HTTP: the job is queued, POSTed by id with the trainer token, and
trained there once; a launcher without the right token is refused and the job stays queued."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from platform_core.adapters.launchers import HttpLauncher
from platform_core.config import Settings
from platform_core.errors import TrainerUnavailable
from platform_core.jobs import Job, ReplyTo
from platform_core.records import TrainingStatus
from tests.fakes import FakeTrainer
from tests.integration.test_trainer_runner import _zip
from trainer_ec2.app import create_app
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:T9"
TOKEN = "launcher-test-token-0123456789abcdef"


@pytest.fixture
def served_trainer(tmp_path: Path):
    settings = Settings(backend="local", home=tmp_path / "home")
    trainer = FakeTrainer()
    app = create_app(build_trainer_context(settings, trainers={"image": trainer, "sentiment": trainer}), token=TOKEN)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield settings, f"http://127.0.0.1:{server.server_port}", trainer
    server.shutdown()


def test_a_train_command_is_posted_to_the_trainer_and_trained_once(served_trainer) -> None:
    settings, url, trainer = served_trainer
    services = build_services(settings, launcher=HttpLauncher(url, token=TOKEN))
    assert dispatch(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    reply = dispatch(Command("train", TENANT, "u", ("c",)), services)
    assert reply.ok, reply.text
    deadline = time.time() + 20
    while services.jobs.get(reply.data["job_id"]).state != "succeeded":
        assert time.time() < deadline, services.jobs.get(reply.data["job_id"])
        time.sleep(0.05)
    assert len(trainer.calls) == 1
    assert services.records.get(TENANT, "c").training_status == TrainingStatus.SUCCESSFUL.value


def test_an_unreachable_trainer_leaves_the_job_queued_and_says_so(tmp_path: Path) -> None:
    settings = Settings(backend="local", home=tmp_path / "home")
    services = build_services(settings, launcher=HttpLauncher("http://127.0.0.1:9", token=TOKEN, timeout_s=1))
    assert dispatch(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    reply = dispatch(Command("train", TENANT, "u", ("c",)), services)
    # queued is a result, not a failure: the reply says the job waits for the trainer
    assert reply.ok and reply.data["trainer_starting"] and "trainer is starting up" in reply.text
    assert services.records.get(TENANT, "c").training_status == TrainingStatus.QUEUED.value
    assert [j.name for j in services.jobs.queued()] == ["c"]


@pytest.mark.parametrize("token", ["wrong-token", TOKEN[:-1] + "X"])
def test_a_launcher_with_the_wrong_token_is_refused_and_the_job_waits(served_trainer, token) -> None:
    settings, url, trainer = served_trainer
    services = build_services(settings, launcher=HttpLauncher(url, token=token))
    assert dispatch(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    reply = dispatch(Command("train", TENANT, "u", ("c",)), services)
    # queued is a result, not a failure: the reply says the job waits for the trainer
    assert reply.ok and reply.data["trainer_starting"] and "trainer is starting up" in reply.text
    time.sleep(0.3)
    assert [j.name for j in services.jobs.queued()] == ["c"] and trainer.calls == []


class Recorder:
    """An opener that records the request and answers 202."""

    def __init__(self) -> None:
        self.requests: list = []

    def __call__(self, req, timeout):
        self.requests.append(req)

        class Answer:
            status = 202

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False
        return Answer()


JOB = Job(job_id="j-7", tenant=TENANT, name="c", kind="sentiment", recipe="fast", dataset_path="p",
          dataset_version=1, requested_by="u", reply_to=ReplyTo("slack", "C1"), enqueued_at=5.0)


def test_the_launcher_sends_the_token_as_a_bearer_header_and_only_the_jobs_id() -> None:
    opener = Recorder()
    HttpLauncher("http://trainer:8080/", token=TOKEN, opener=opener)(JOB)
    (req,) = opener.requests
    assert req.full_url == "http://trainer:8080/train_sentiment_analysis" and req.get_method() == "POST"
    assert req.get_header("Authorization") == f"Bearer {TOKEN}"
    assert json.loads(req.data) == {"job_id": "j-7", "kind": "sentiment", "tenant": TENANT, "name": "c"}


def test_a_launcher_without_a_token_sends_nothing() -> None:
    opener = Recorder()
    with pytest.raises(TrainerUnavailable, match="MLBOT_TRAINER_TOKEN"):
        HttpLauncher("http://trainer:8080", token="", opener=opener)(JOB)
    assert opener.requests == []
