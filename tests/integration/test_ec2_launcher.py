"""The EC2 trainer lifecycle: start a stopped trainer (moto), wait for it, check /health, hand it the job
with the trainer token; bounded waits; several trainers; the trainer stopping itself when idle."""
from __future__ import annotations

import itertools
import urllib.request

import pytest
from moto import mock_aws
from werkzeug.serving import make_server

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from platform_core.adapters.aws import make_boto3_client
from platform_core.adapters.aws_ec2 import Ec2Launcher, IdleStopper
from platform_core.config import Settings
from platform_core.errors import TrainerUnavailable
from platform_core.jobs import Job, ReplyTo
from tests.fakes import FakeTrainer
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend
from tests.serving import serve_in_thread
from trainer_ec2.app import create_app
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:TEC2"
TOKEN = "ec2-launcher-test-token-0123456789"


@pytest.fixture
def trainer_server():
    """A real trainer app on localhost (on the in-memory fakes), standing in for the instance's nginx + gunicorn."""
    backend = MemoryBackend()
    ctx = build_trainer_context(backend.settings, backend=backend,
                                trainers={"image": FakeTrainer(), "sentiment": FakeTrainer()})
    services = build_services(backend.settings, launcher=lambda job: None, backend=backend)
    assert dispatch(Command("upload", TENANT, "u", ("colours",), Attachment("c.zip", _zip())), services).ok
    record = services.records.get(TENANT, "colours")

    class NoDrain:  # the test drains by hand, so what the launcher did is seen on its own
        def kick(self) -> None: ...

        def busy(self) -> bool:
            return False
    server = make_server("127.0.0.1", 0, create_app(ctx, token=TOKEN, drainer=NoDrain()), threaded=True)
    serve_in_thread(server)
    job = Job(job_id="job-ec2", tenant=TENANT, name="colours", kind="image", recipe="fast",
              dataset_path=record.dataset_path, dataset_version=1, requested_by="u",
              reply_to=ReplyTo("slack", "C1"))
    job = ctx.jobs.submit(job)  # the chat function queues the job, then launches a trainer for it
    try:
        yield server.server_port, ctx, job
    finally:
        server.shutdown()


@pytest.fixture
def ec2(aws_credentials, monkeypatch):
    # moto runs any image id, and loading its catalogue of public images takes seconds
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        client = make_boto3_client("ec2", Settings(backend="aws", bucket="b", region="us-east-1"))
        ids = [i["InstanceId"] for i in client.run_instances(ImageId="ami-0123456789abcdef0", MinCount=2, MaxCount=2,
                                                              InstanceType="t3.large")["Instances"]]
        yield client, ids


def state(client, instance_id: str) -> str:
    return client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_a_stopped_trainer_is_started_checked_and_given_the_job(ec2, trainer_server) -> None:
    client, ids = ec2
    port, ctx, job = trainer_server
    client.stop_instances(InstanceIds=ids)
    assert {state(client, i) for i in ids} == {"stopped"}
    launcher = Ec2Launcher(instance_ids=ids, token=TOKEN, client=client, port=port, address=lambda i: "127.0.0.1", poll_s=0)
    launcher(job)
    assert sorted(state(client, i) for i in ids) == ["running", "stopped"]  # one trainer was enough
    assert ctx.jobs.get("job-ec2").reply_to == ReplyTo("slack", "C1")
    launcher(job)  # a repeated launch is harmless: the running trainer is reused, the job id known
    assert sorted(state(client, i) for i in ids) == ["running", "stopped"]
    assert drain(ctx) == 1


def test_the_launcher_hands_the_job_over_with_its_token_and_a_wrong_one_is_refused(ec2, trainer_server) -> None:
    client, ids = ec2
    port, ctx, job = trainer_server
    wrong = Ec2Launcher(instance_ids=ids, token="not-the-token", client=client, port=port,
                        address=lambda i: "127.0.0.1", poll_s=0)
    with pytest.raises(TrainerUnavailable, match="trainer answered 401"):
        wrong(job)
    assert ctx.jobs.queued() == [job]
    seen = []

    def opener(req, timeout):  # the real urlopen, watched
        seen.append(req)
        return urllib.request.urlopen(req, timeout=timeout)
    Ec2Launcher(instance_ids=ids, token=TOKEN, client=client, port=port, address=lambda i: "127.0.0.1",
                poll_s=0, opener=opener)(job)
    posted = [r for r in seen if not isinstance(r, str)]
    assert [r.get_header("Authorization") for r in posted] == [f"Bearer {TOKEN}"]
    assert ctx.jobs.queued() == [job] and drain(ctx) == 1


def test_a_running_trainer_is_preferred_over_starting_another(ec2, trainer_server) -> None:
    client, ids = ec2
    port, ctx, job = trainer_server
    client.stop_instances(InstanceIds=[ids[0]])
    launcher = Ec2Launcher(instance_ids=ids, token=TOKEN, client=client, port=port, address=lambda i: "127.0.0.1", poll_s=0)
    assert launcher.ensure_running()["InstanceId"] == ids[1]
    assert state(client, ids[0]) == "stopped"


def test_terminated_trainers_and_a_silent_health_check_are_refused_within_bounds(ec2) -> None:
    client, ids = ec2
    ticks = itertools.count(0, 10)
    launcher = Ec2Launcher(instance_ids=ids, token=TOKEN, client=client, port=9, address=lambda i: "127.0.0.1",
                           health_timeout_s=30, poll_s=0, clock=lambda: next(ticks))
    job = Job(job_id="j", tenant=TENANT, name="x", kind="image", recipe="fast", dataset_path="p",
              dataset_version=1, requested_by="u")
    with pytest.raises(TrainerUnavailable, match="did not answer /health within 30 s"):
        launcher(job)
    client.terminate_instances(InstanceIds=ids)
    with pytest.raises(TrainerUnavailable, match="terminated"):
        launcher(job)


class SlowEc2:
    """describe_instances answers from a script of states; records start calls (moto has no 'stopping')."""

    def __init__(self, states: list[str]) -> None:
        self.states, self.started = states, []

    def describe_instances(self, InstanceIds):
        name = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"Reservations": [{"Instances": [{"InstanceId": InstanceIds[0], "State": {"Name": name},
                                                 "PrivateIpAddress": "10.0.0.5" if name == "running" else None}]}]}

    def start_instances(self, InstanceIds):
        self.started.append(InstanceIds[0])


def test_a_stopping_trainer_is_waited_for_then_started() -> None:
    fake = SlowEc2(["stopping", "stopping", "stopped", "pending", "pending", "running"])
    launcher = Ec2Launcher(instance_ids=["i-1"], token=TOKEN, client=fake, poll_s=0)
    assert launcher.ensure_running()["PrivateIpAddress"] == "10.0.0.5"
    assert fake.started == ["i-1"] and fake.states == ["running"]


def test_a_trainer_stuck_pending_times_out() -> None:
    ticks = itertools.count(0, 60)
    launcher = Ec2Launcher(instance_ids=["i-1"], token=TOKEN, client=SlowEc2(["pending"]), poll_s=0, start_timeout_s=300,
                           clock=lambda: next(ticks))
    with pytest.raises(TrainerUnavailable, match="still pending after 300 s"):
        launcher.ensure_running()


def test_an_idle_trainer_stops_its_own_instance(ec2) -> None:
    client, ids = ec2
    now = [0.0]
    busy = [True]
    stopper = IdleStopper(instance_id=ids[0], busy=lambda: busy[0], idle_s=900, client=client, clock=lambda: now[0])
    now[0] = 1000
    assert not stopper.check()  # training: never stopped
    busy[0] = False
    now[0] = 1500
    assert not stopper.check() and state(client, ids[0]) == "running"  # idle 500 s of 900
    now[0] = 1901
    assert stopper.check() and state(client, ids[0]) == "stopped"
