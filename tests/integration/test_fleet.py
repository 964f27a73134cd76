"""The training fleet's promises, on every backend (the fakes, SQLite, SQS and DynamoDB under moto), with a fake
(torch-free) trainer: one tenant's backlog delays another's job by at most one job; a duplicate delivery
trains once; a ticket delivered too often lands in the dead-letter queue and its chat is told; the
reconciler gives a stranded job a new ticket; and, against moto's Auto Scaling API, the submit path raises
the group's desired capacity and a training worker holds scale-in protection."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
from moto import mock_aws

from bot.wiring import build_services
from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from platform_core.adapters.local_events import LocalEventBus
from platform_core.backend import Backend
from platform_core.errors import StorageError
from platform_core.events import FAILED, FINISHED
from platform_core.jobs import MAX_ATTEMPTS, JobState, ReplyTo
from platform_core.reconcile import STUCK_AFTER_S, reconcile
from tests import infra
from tests.backends import EVERY_BACKEND, contract_backend
from tests.fakes import FakeTrainer
from tests.integration.test_trainer_runner import _zip
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

NOISY, QUIET = "slack:TNOISY", "slack:TQUIET"
CHAT = ReplyTo("slack", "C1")
ZIP = _zip(classes=("red", "green"), per=10)


class World:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.trainer = FakeTrainer()
        self.ctx = build_trainer_context(backend.settings, backend=backend, events=LocalEventBus(),
                                         trainers={"image": self.trainer, "sentiment": self.trainer})
        self.events: list = []
        self.ctx.events.subscribe(self.events.append)
        self.services = build_services(backend.settings, backend=backend, launcher=lambda job: None)

    def upload(self, tenant: str, name: str) -> None:
        reply = dispatch(Command("upload", tenant, "u", (name,), Attachment("d.zip", ZIP)), self.services)
        assert reply.ok, reply.text

    def train(self, tenant: str, name: str) -> dict:
        reply = dispatch(Command("train", tenant, "u", (name,)), self.services, reply_to=CHAT)
        assert reply.ok, reply.text
        return reply.data


@pytest.fixture(params=EVERY_BACKEND)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    for backend in contract_backend(request.param, request, tmp_path):
        yield World(backend)


def test_one_tenants_twenty_queued_jobs_delay_another_tenants_job_by_at_most_one(world: World) -> None:
    for i in range(20):
        world.upload(NOISY, f"n{i}")
    world.upload(QUIET, "only")
    noisy = [world.train(NOISY, f"n{i}")["job_id"] for i in range(20)]
    quiet = world.train(QUIET, "only")
    assert quiet["position"] <= 2  # what the user is told is what happens
    order = []
    world.trainer.on_epoch = lambda epoch: order.append(world.ctx.lock.get(world.ctx.machine).owner) \
        if epoch == 1 else None
    assert drain(world.ctx) == 21  # one trainer, one job at a time
    assert order.index(quiet["job_id"]) <= 1, [world.ctx.jobs.get(j).tenant for j in order[:3]]
    assert sorted(order) == sorted(noisy + [quiet["job_id"]])


def test_a_queue_that_refuses_the_ticket_leaves_no_job_behind_and_a_retry_queues_afresh(world: World) -> None:
    world.upload(QUIET, "only")
    queue = world.ctx.queue
    send = queue.send

    def refuse(job, generation=0):
        raise StorageError("send", job.job_id, "ServiceUnavailable")
    queue.send = refuse  # type: ignore[method-assign]
    reply = dispatch(Command("train", QUIET, "u", ("only",)), world.services, reply_to=CHAT)
    assert not reply.ok and "nothing was saved" in reply.text
    assert world.ctx.jobs.active_for(QUIET, "only") is None and world.ctx.jobs.queued() == []
    assert world.services.records.get(QUIET, "only").training_status == "Training Not Started"
    queue.send = send  # type: ignore[method-assign]
    again = world.train(QUIET, "only")
    assert not again["joined"] and again["position"] == 1 and drain(world.ctx) == 1


def test_a_duplicate_delivery_trains_once_and_the_spare_ticket_is_deleted(world: World) -> None:
    world.upload(QUIET, "only")
    job_id = world.train(QUIET, "only")["job_id"]
    world.ctx.queue.send(world.ctx.jobs.get(job_id))  # SQS delivers at least once: a second copy
    assert world.ctx.queue.depth().total == 2
    assert drain(world.ctx) == 1
    assert len(world.trainer.calls) == 1 and world.ctx.queue.depth().total == 0
    assert [e.type for e in world.events].count(FINISHED) == 1


def test_a_ticket_delivered_too_often_lands_in_the_dead_letters_and_the_chat_is_told_once(world: World) -> None:
    world.upload(QUIET, "only")
    job_id = world.train(QUIET, "only")["job_id"]
    jobs, queue = world.ctx.jobs, world.ctx.queue
    now = world.ctx.clock()
    for attempt in range(MAX_ATTEMPTS):  # each delivery's trainer dies mid-job, before its lease runs out
        ticket = queue.receive(0, 0)
        assert ticket.job_id == job_id and ticket.receive_count == attempt + 1
        assert jobs.claim(job_id, f"i-dead-{attempt}", now - 1000 + 10 * attempt, lease_s=1)
    assert queue.receive(0, 60) is None  # the queue gives up on it: it goes to the dead-letter queue
    done = reconcile(jobs, world.ctx.records, world.ctx.events, world.backend.queues, world.ctx.clock())
    assert done.failed == [job_id] and done.dead_letters == 1
    failed = jobs.get(job_id)
    assert failed.state == JobState.FAILED.value and "gave up on this job" in failed.error
    assert [(e.type, e.job_id, e.reply_to) for e in world.events] == [(FAILED, job_id, CHAT)]
    record = world.services.records.get(QUIET, "only")
    assert record.training_status == "Training Failed" and record.training_error == failed.error
    again = reconcile(jobs, world.ctx.records, world.ctx.events, world.backend.queues, world.ctx.clock())
    assert again.failed == [] and len(world.events) == 1 and queue.dead_letters() == []


def test_a_bounced_ticket_is_sent_once_more_from_the_dead_letters_and_fails_the_second_time(world: World) -> None:
    world.upload(QUIET, "only")
    job_id = world.train(QUIET, "only")["job_id"]
    queue, jobs = world.ctx.queue, world.ctx.jobs
    args = (jobs, world.ctx.records, world.ctx.events, world.backend.queues)

    def bounce() -> None:  # delivered three times, never tried (its receivers could not take work)
        for _ in range(3):
            assert queue.receive(0, 0).job_id == job_id
        assert queue.receive(0, 60) is None

    bounce()
    first = reconcile(*args, world.ctx.clock())
    assert first.resent == [job_id] and first.failed == [] and jobs.get(job_id).state == JobState.QUEUED.value
    bounce()
    second = reconcile(*args, world.ctx.clock())
    assert second.failed == [job_id] and "gave up on this job" in jobs.get(job_id).error
    assert [e.type for e in world.events] == [FAILED]


def test_the_reconciler_gives_a_job_without_a_ticket_a_new_one_once_it_is_overdue(world: World) -> None:
    world.upload(QUIET, "only")
    job_id = world.train(QUIET, "only")["job_id"]
    queue = world.ctx.queue
    queue.delete(queue.receive(0, 60))  # the ticket is lost (a crash between storing the job and sending)
    enqueued = world.ctx.jobs.get(job_id).enqueued_at
    args = (world.ctx.jobs, world.ctx.records, world.ctx.events, world.backend.queues)
    assert reconcile(*args, enqueued + 60).resent == []  # not overdue yet: it may be on its way
    assert reconcile(*args, enqueued + STUCK_AFTER_S + 1).resent == [job_id]
    assert reconcile(*args, enqueued + STUCK_AFTER_S + 2).resent == []  # it has a ticket now
    assert drain(world.ctx) == 1 and world.ctx.jobs.get(job_id).state == JobState.SUCCEEDED.value


def test_a_dead_trainers_job_without_a_ticket_is_sent_again_and_retried(world: World) -> None:
    world.upload(QUIET, "only")
    job_id = world.train(QUIET, "only")["job_id"]
    queue, jobs = world.ctx.queue, world.ctx.jobs
    queue.delete(queue.receive(0, 60))
    assert jobs.claim(job_id, "i-dead", world.ctx.clock() - 1000, lease_s=1)  # its trainer died long ago
    done = reconcile(jobs, world.ctx.records, world.ctx.events, world.backend.queues, world.ctx.clock())
    assert done.resent == [job_id]
    assert drain(world.ctx) == 1
    assert (jobs.get(job_id).state, jobs.get(job_id).attempts) == (JobState.SUCCEEDED.value, 2)


def test_the_queue_gives_up_after_as_many_deliveries_as_a_job_has_attempts() -> None:
    """The template's redrive policy and the code's retry limit are one number: the dead-letter notice says it."""
    policy = infra.load_template()["Resources"]["TrainingQueue"]["Properties"]["RedrivePolicy"]
    assert int(policy["maxReceiveCount"]) == MAX_ATTEMPTS


# ---- the fleet against moto's Auto Scaling API ----------------------------------------------------------------


@pytest.fixture
def fleet(aws_credentials, atomic_moto_writes):
    from platform_core.adapters.aws import make_boto3_client
    from platform_core.backend import backend_for
    from platform_core.config import Settings

    with mock_aws():
        settings = infra.deploy(Settings(backend="aws", bucket="mlbot-fleet", region="us-east-1"))
        settings = replace(settings, trainer_groups={"cpu": "stack-trainers"})
        ec2, autoscaling = make_boto3_client("ec2", settings), make_boto3_client("autoscaling", settings)
        image = ec2.describe_images()["Images"][0]["ImageId"]
        ec2.create_launch_template(LaunchTemplateName="trainer",
                                   LaunchTemplateData={"ImageId": image, "InstanceType": "c7i.xlarge"})
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName="stack-trainers", LaunchTemplate={"LaunchTemplateName": "trainer"},
            MinSize=0, MaxSize=2, DesiredCapacity=0, AvailabilityZones=["us-east-1a"])
        yield backend_for(settings), autoscaling


def _group(autoscaling) -> dict:
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["stack-trainers"])["AutoScalingGroups"][0]


def test_train_raises_the_trainer_groups_desired_capacity_at_once_within_max_size(fleet) -> None:
    backend, autoscaling = fleet
    services = build_services(backend.settings, backend=backend)  # the real wiring: the group's scale-out
    for name in ("a", "b", "c"):
        assert dispatch(Command("upload", QUIET, "u", (name,), Attachment("d.zip", ZIP)), services).ok
    first = dispatch(Command("train", QUIET, "u", ("a",)), services, reply_to=CHAT)
    assert first.ok and first.data["trainer_starting"] and "A trainer is starting up" in first.text
    assert _group(autoscaling)["DesiredCapacity"] == 1
    assert backend.queue().depth().total == 1  # submit sent one message
    for name in ("b", "c"):
        assert dispatch(Command("train", QUIET, "u", (name,)), services, reply_to=CHAT).ok
    assert _group(autoscaling)["DesiredCapacity"] == 2  # three jobs wait; MaxSize is 2
    again = dispatch(Command("train", QUIET, "u", ("a",)), services, reply_to=CHAT)
    assert again.data["joined"] and _group(autoscaling)["DesiredCapacity"] == 2 and backend.queue().depth().total == 3


def test_a_training_worker_holds_scale_in_protection_and_gives_it_back(fleet) -> None:
    from platform_core.adapters.aws_fleet import ScaleInProtection

    backend, autoscaling = fleet
    autoscaling.set_desired_capacity(AutoScalingGroupName="stack-trainers", DesiredCapacity=1)
    instance = _group(autoscaling)["Instances"][0]["InstanceId"]

    def protected() -> bool:
        found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
        return found[0]["ProtectedFromScaleIn"]

    seen = []
    trainer = FakeTrainer()
    trainer.on_epoch = lambda epoch: seen.append(protected())
    settings = replace(backend.settings, machine_id=instance)
    ctx = build_trainer_context(settings, backend=backend, trainers={"image": trainer, "sentiment": trainer})
    assert isinstance(ctx.protect, ScaleInProtection)
    services = build_services(settings, backend=backend, launcher=lambda job: None)
    assert dispatch(Command("upload", QUIET, "u", ("a",), Attachment("d.zip", ZIP)), services).ok
    assert dispatch(Command("train", QUIET, "u", ("a",)), services, reply_to=CHAT).ok
    assert protected() is False
    assert drain(ctx) == 1
    assert seen and all(seen) and protected() is False
    assert ctx.lock.get(instance).State == "Free"  # its MachineStatus row
