"""Trainers that really die, against the moto server over HTTP: each worker is its own process, and the fake
training function ends it with os._exit mid-job (no cleanup, no finally: as a kill or an out-of-memory would).

- A worker killed mid-job: its ticket is delivered again after the visibility timeout (2 s here), the
  next worker retries the job, which ends once (one TrainingFinished, no failure).
- A job that kills every worker: its ticket is delivered maxReceiveCount (3) times, then SQS moves it to the
  dead-letter queue, and the reconciler fails the job and tells its chat, once.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from bot import reconciler
from bot.wiring import build_services
from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from platform_core.adapters.aws import make_boto3_client
from platform_core.backend import backend_for
from platform_core.config import Settings
from platform_core.events import FAILED, FINISHED, PROGRESS, TrainingEvent
from platform_core.jobs import JobState, ReplyTo
from tests import infra
from tests.integration.test_trainer_runner import _zip

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TENANT = "slack:TFAULT"
CHAT = ReplyTo("slack", "C9")
VISIBILITY_S = 2

WORKER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from platform_core.config import Settings
    from tests.fakes import FakeTrainer
    from trainer_ec2.runner import drain
    from trainer_ec2.wiring import build_trainer_context

    marker = Path(os.environ["KILL_MARKER"])
    fake = FakeTrainer()

    def train(data, config, progress=None):
        if progress:
            progress(1, 3, {"train_loss": 1.0, "train_accuracy": 0.5, "validation_accuracy": 0.5})
        if os.environ["KILL"] == "always" or not marker.exists():
            marker.touch()
            os._exit(137)  # killed mid-job: no finally, no cleanup, the ticket still held
        return fake(data, config, progress)

    ctx = build_trainer_context(Settings.from_env(), trainers={"image": train, "sentiment": train},
                                lease_s=1, visibility_s=%d, heartbeat_s=0.3)
    print("ran", drain(ctx, wait_s=%d))
""" % (VISIBILITY_S, VISIBILITY_S + 3))


@pytest.fixture
def cloud(aws_credentials, tmp_path: Path):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    base = Settings(backend="aws", bucket="mlbot-faults", region="us-east-1", aws_endpoint_url=endpoint,
                    machine_id="i-test")
    settings = infra.deploy(base, visibility_s=VISIBILITY_S)
    sns, sqs = make_boto3_client("sns", settings), make_boto3_client("sqs", settings)
    topic = sns.create_topic(Name="mlbot-events")["TopicArn"]
    events = sqs.create_queue(QueueName="notifier")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=events, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    settings = replace(settings, topic_arn=topic)
    services = build_services(settings, launcher=lambda job: None)
    assert dispatch(Command("upload", TENANT, "u", ("colours",), Attachment("c.zip", _zip())), services).ok
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLBOT_BACKEND": "aws", "MLBOT_BUCKET": settings.bucket,
           "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "MLBOT_TOPIC_ARN": topic,
           "MLBOT_QUEUE_URL": settings.queue_urls["cpu"], "MLBOT_DEAD_LETTER_URL": settings.dead_letter_url,
           "KILL_MARKER": str(tmp_path / "killed")}
    try:
        yield settings, services, sqs, events, env
    finally:
        server.stop()


def _worker(env: dict, machine: str, kill: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WORKER], cwd=REPO, env={**env, "MLBOT_MACHINE_ID": machine,
                                                                           "KILL": kill},
                          capture_output=True, text=True, timeout=120)


def _events(sqs, url: str) -> list[TrainingEvent]:
    out = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return out
        for message in batch:
            out.append(TrainingEvent.from_json(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_worker_killed_mid_job_is_redelivered_and_the_job_ends_once(cloud) -> None:
    settings, services, sqs, events, env = cloud
    job_id = dispatch(Command("train", TENANT, "u", ("colours",)), services, reply_to=CHAT).data["job_id"]
    killed = _worker(env, "i-first", kill="once")
    assert killed.returncode == 137, killed.stderr
    assert services.jobs.get(job_id).state == JobState.RUNNING.value  # nobody cleaned up after it
    survivor = _worker(env, "i-second", kill="once")  # waits out the visibility timeout, then takes the job over
    assert survivor.returncode == 0 and "ran 1" in survivor.stdout, survivor.stderr
    job = services.jobs.get(job_id)
    assert (job.state, job.trainer, job.attempts) == (JobState.SUCCEEDED.value, "i-second", 2)
    told = _events(sqs, events)
    assert [e.type for e in told].count(FINISHED) == 1 and FAILED not in {e.type for e in told}
    assert {e.reply_to for e in told} == {CHAT} and told[0].type == PROGRESS
    assert backend_for(settings).queue().depth().total == 0


def test_a_job_that_kills_every_worker_lands_in_the_dead_letter_queue_and_its_chat_is_told(cloud) -> None:
    settings, services, sqs, events, env = cloud
    job_id = dispatch(Command("train", TENANT, "u", ("colours",)), services, reply_to=CHAT).data["job_id"]
    for attempt in range(3):  # the redrive policy's maxReceiveCount
        assert _worker(env, f"i-{attempt}", kill="always").returncode == 137
    last = _worker(env, "i-last", kill="always")  # its receive finds the message moved to the DLQ
    assert last.returncode == 0 and "ran 0" in last.stdout, last.stderr
    dead = sqs.get_queue_attributes(QueueUrl=settings.dead_letter_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert dead["Attributes"]["ApproximateNumberOfMessages"] == "1"
    done = reconciler.run(backend_for(settings))
    assert done.failed == [job_id] and done.dead_letters == 1
    job = services.jobs.get(job_id)
    assert job.state == JobState.FAILED.value and "gave up on this job after 3 tries" in job.error
    told = [e for e in _events(sqs, events) if e.type in (FINISHED, FAILED)]
    assert [(e.type, e.reply_to) for e in told] == [(FAILED, CHAT)]
    assert services.records.get(TENANT, "colours").training_status == "Training Failed"
    assert reconciler.run(backend_for(settings)).failed == []  # nothing told twice
