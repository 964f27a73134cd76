"""Handlers reach a remote trainer over HTTP: the job is queued, POSTed by id with the trainer token, and
trained there once; a launcher without the right token is refused and the job stays queued."""
from __future__ import annotations

import json
import threading

import pytest
from werkzeug.serving import make_server

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from platform_core.adapters.launchers import HttpLauncher
from platform_core.errors import TrainerUnavailable
from platform_core.jobs import Job, ReplyTo
from platform_core.records import TrainingStatus
from tests.fakes import FakeTrainer
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend, memory_services
from tests.serving import serve_in_thread
from trainer_ec2.app import Drainer, create_app
from trainer_ec2.runner import TrainerContext, drain
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:T9"
TOKEN = "launcher-test-token-0123456789abcdef"


class WatchedDrainer(Drainer):
    """The trainer app's drainer, counting the requests that asked for a drain and telling when one ended."""

    def __init__(self, ctx: TrainerContext) -> None:
        self.kicks, self.drained = 0, threading.Event()
        super().__init__(ctx, run=self._drain)

    def _drain(self, ctx: TrainerContext) -> int:
        try:
            return drain(ctx)
        finally:
            self.drained.set()

    def kick(self) -> None:
        self.kicks += 1
        super().kick()


@pytest.fixture
def served_trainer():
    """A trainer app over real HTTP on 127.0.0.1, on the in-memory fakes the chat side shares."""
    backend = MemoryBackend()
    trainer = FakeTrainer()
    ctx = build_trainer_context(backend.settings, backend=backend, trainers={"image": trainer, "sentiment": trainer})
    drainer = WatchedDrainer(ctx)
    server = make_server("127.0.0.1", 0, create_app(ctx, token=TOKEN, drainer=drainer), threaded=True)
    serve_in_thread(server)
    yield backend, f"http://127.0.0.1:{server.server_port}", trainer, drainer
    server.shutdown()


def test_a_train_command_is_posted_to_the_trainer_and_trained_once(served_trainer) -> None:
    backend, url, trainer, drainer = served_trainer
    services = build_services(backend.settings, launcher=HttpLauncher(url, token=TOKEN), backend=backend)
    assert dispatch(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    reply = dispatch(Command("train", TENANT, "u", ("c",)), services)
    assert reply.ok, reply.text
    assert drainer.drained.wait(20), "the trainer never drained its queue"
    assert services.jobs.get(reply.data["job_id"]).state == "succeeded" and len(trainer.calls) == 1
    assert services.records.get(TENANT, "c").training_status == TrainingStatus.SUCCESSFUL.value


def test_an_unreachable_trainer_leaves_the_job_queued_and_says_so() -> None:
    services = memory_services(launcher=HttpLauncher("http://127.0.0.1:9", token=TOKEN, timeout_s=1))
    assert dispatch(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    reply = dispatch(Command("train", TENANT, "u", ("c",)), services)
    # queued is a result, not a failure: the reply says the job waits for the trainer
    assert reply.ok and reply.data["trainer_starting"] and "trainer is starting up" in reply.text
    assert services.records.get(TENANT, "c").training_status == TrainingStatus.QUEUED.value
    assert [j.name for j in services.jobs.queued()] == ["c"]


@pytest.mark.parametrize("token", ["wrong-token", TOKEN[:-1] + "X"])
def test_a_launcher_with_the_wrong_token_is_refused_and_the_job_waits(served_trainer, token) -> None:
    backend, url, trainer, drainer = served_trainer
    services = build_services(backend.settings, launcher=HttpLauncher(url, token=token), backend=backend)
    assert dispatch(Command("upload", TENANT, "u", ("c",), Attachment("c.zip", _zip())), services).ok
    reply = dispatch(Command("train", TENANT, "u", ("c",)), services)
    # queued is a result, not a failure: the reply says the job waits for the trainer
    assert reply.ok and reply.data["trainer_starting"] and "trainer is starting up" in reply.text
    assert drainer.kicks == 0  # refused before the trainer was asked to drain: nothing runs later either
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
