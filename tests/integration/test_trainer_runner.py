"""The job lifecycle on the in-memory fakes with a fake (torch-free) trainer: states, events, failures, lock."""
from __future__ import annotations

import threading

import pytest

from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from platform_core.adapters.launchers import ThreadLauncher
from platform_core.errors import OnnxMismatch, TrainerOutOfMemory, TrainingDataUnreadable
from platform_core.events import FAILED, FINISHED, PROGRESS
from platform_core.jobs import Job, ReplyTo
from platform_core.models import load_manifest
from platform_core.records import TrainingStatus
from platform_core.training import submit_training
from tests.fakes import FakeTrainer, png
from tests.memory import MemoryBackend
from platform_core.jobs import MAX_ATTEMPTS
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context
from bot.wiring import build_services

TENANT = "telegram:42"


class Launched:
    """A launcher that records jobs; tests drain by hand so ordering is deterministic."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def __call__(self, job: Job) -> None:
        self.jobs.append(job)


def _zip(classes=("red", "green", "blue"), per=10) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for c, cls in enumerate(classes):
            for i in range(per):
                colour = [20 + i, 20 + i, 20 + i]
                colour[c % 3] = 250
                zf.writestr(f"{cls}/{i}.png", png(tuple(colour)))
    return out.getvalue()


@pytest.fixture
def world():
    backend = MemoryBackend()
    trainer = FakeTrainer()
    ctx = build_trainer_context(backend.settings, backend=backend, trainers={"image": trainer, "sentiment": trainer},
                                heartbeat_s=0.05)
    events = []
    ctx.events.subscribe(events.append)
    launched = Launched()
    services = build_services(backend.settings, launcher=launched, backend=backend)
    for name in ("colours", "shades", "tints"):
        reply = dispatch(Command("upload", TENANT, "u1", (name,), Attachment("c.zip", _zip())), services)
        assert reply.ok, reply.text
    return ctx, services, trainer, events, launched


def _train(services, name="colours"):
    return dispatch(Command("train", TENANT, "u1", (name,)), services, reply_to=ReplyTo("telegram", "42"))


def _status(services, name="colours"):
    return services.records.get(TENANT, name)


def test_training_moves_status_from_queued_to_successful_and_records_accuracies(world) -> None:
    ctx, services, trainer, events, launched = world
    assert _status(services).training_status == TrainingStatus.NOT_STARTED.value
    reply = _train(services)
    assert reply.ok and reply.data["position"] == 1 and "position 1 in the queue" in reply.text
    assert _status(services).training_status == TrainingStatus.QUEUED.value
    assert [j.job_id for j in launched.jobs] == [reply.data["job_id"]]
    assert drain(ctx) == 1
    record = _status(services)
    assert record.training_status == TrainingStatus.SUCCESSFUL.value
    assert record.validation_accuracy == 0.9 and record.training_accuracy == 1.0 and record.model_version == 1
    manifest = load_manifest(services.blobs, record.model_path)
    assert set(manifest["files"]) >= {"model.onnx", "classes.json", "preprocess.json", "metrics.json", "confusion.png"}
    assert [e.type for e in events] == [PROGRESS] * 3 + [FINISHED]
    assert events[-1].reply_to == ReplyTo("telegram", "42") and events[-1].payload["validation_accuracy"] == 0.9
    assert trainer.calls[0][0] == services.blobs.get(record.dataset_path)


def test_a_failed_training_keeps_the_last_good_model_and_says_why(world) -> None:
    ctx, services, trainer, events, _ = world
    _train(services)
    drain(ctx)
    good = _status(services)
    trainer.fail = TrainingDataUnreadable("image", "is not a readable zip (truncated)")
    reason = "the stored dataset is not a readable zip (truncated); upload it again"
    _train(services)
    drain(ctx)
    record = _status(services)
    assert record.training_status == TrainingStatus.FAILED.value
    assert record.training_error == reason
    assert (record.model_path, record.model_version, record.validation_accuracy) == (
        good.model_path, good.model_version, good.validation_accuracy)
    assert events[-1].type == FAILED and events[-1].payload["reason"] == reason
    status = dispatch(Command("status", TENANT, "u1", ("colours",)), services)
    assert f"Last training failed: {reason}" in status.text and "Model: version 1" in status.text


@pytest.mark.parametrize("error, words", [(MemoryError(), "ran out of memory; try fewer or smaller images"),
                                          (TrainerOutOfMemory("image"), "ran out of memory"),
                                          (OnnxMismatch(0.02, 1e-3), "did not reproduce the trained one"),
                                          (KeyError("x"), "internal error (KeyError)")])
def test_any_exception_ends_in_failed_with_a_readable_reason(world, error, words) -> None:
    ctx, services, trainer, events, _ = world
    trainer.fail = error
    _train(services)
    drain(ctx)
    assert words in _status(services).training_error
    assert "Traceback" not in events[-1].payload["reason"]


def test_jobs_run_one_at_a_time_in_queue_order(world) -> None:
    ctx, services, trainer, _, _ = world
    order = [_train(services, n).data["position"] for n in ("tints", "colours", "shades")]
    assert order == [1, 2, 3]
    seen = []
    trainer.on_epoch = lambda epoch: seen.append(ctx.lock.get(ctx.machine).owner) if epoch == 1 else None
    assert drain(ctx) == 3
    names = [ctx.jobs.get(owner).name for owner in seen]
    assert names == ["tints", "colours", "shades"]


def test_a_request_while_busy_is_queued_with_its_position(world) -> None:
    ctx, services, _, _, _ = world
    assert ctx.lock.acquire(ctx.machine, "someone-else", 60, ctx.clock())
    first, second = _train(services, "colours"), _train(services, "shades")
    assert (first.data["position"], second.data["position"]) == (1, 2)
    assert drain(ctx) == 0  # the holder will drain when it is done
    assert _status(services).training_status == TrainingStatus.QUEUED.value


def test_a_second_train_request_for_the_same_dataset_joins_the_queued_job(world) -> None:
    ctx, services, trainer, _, launched = world
    first, again = _train(services), _train(services)
    assert again.ok and again.data["joined"] and again.data["job_id"] == first.data["job_id"]
    assert "already queued" in again.text
    # the join asks the launcher again for the same job (a failed trainer start is retried); one job exists
    assert {j.job_id for j in launched.jobs} == {first.data["job_id"]} and len(services.jobs.queued()) == 1
    drain(ctx)
    assert len(trainer.calls) == 1


def test_a_repeated_request_with_the_same_job_id_does_not_train_twice(world) -> None:
    ctx, services, trainer, events, _ = world
    job_id = _train(services).data["job_id"]
    job = ctx.jobs.get(job_id)
    again = lambda: submit_training(ctx.jobs, {"cpu": ctx.queue}, ctx.records,  # noqa: E731
                                    ctx.records.get(TENANT, job.name), recipe=job.recipe,
                                    requested_by="u1", reply_to=job.reply_to, job_id=job_id).job
    assert again().job_id == job_id
    drain(ctx)
    assert again().state == "succeeded"
    assert drain(ctx) == 0 and len(trainer.calls) == 1
    assert [e.type for e in events].count(FINISHED) == 1


def test_reupload_is_refused_while_training_is_queued(world) -> None:
    ctx, services, _, _, _ = world
    _train(services)
    reply = dispatch(Command("upload", TENANT, "u1", ("colours",), Attachment("c.zip", _zip())), services)
    assert not reply.ok and "wait until its training ends" in reply.text


def test_a_job_whose_trainer_died_is_retried_by_the_next_trainer_and_told_once(world) -> None:
    ctx, services, trainer, events, _ = world
    dead = _train(services, "colours").data["job_id"]
    _train(services, "shades")
    assert ctx.jobs.claim(dead, "crashed-trainer", ctx.clock() - 1000, lease_s=1)  # its lease ran out long ago
    assert drain(ctx) == 2
    retried = ctx.jobs.get(dead)
    assert (retried.state, retried.trainer, retried.attempts) == ("succeeded", ctx.machine, 2)
    assert _status(services, "colours").training_status == TrainingStatus.SUCCESSFUL.value
    assert _status(services, "shades").training_status == TrainingStatus.SUCCESSFUL.value
    assert [e.job_id for e in events if e.type == FINISHED].count(dead) == 1 and FAILED not in {e.type for e in events}


def test_a_job_that_stopped_its_trainer_every_time_fails_and_its_chat_is_told(world) -> None:
    ctx, services, trainer, events, _ = world
    dead = _train(services, "colours").data["job_id"]
    for attempt in range(MAX_ATTEMPTS):
        assert ctx.jobs.claim(dead, f"crashed-{attempt}", ctx.clock() - 1000 + attempt * 10, lease_s=1)
    assert drain(ctx) == 0 and trainer.calls == []
    record = _status(services, "colours")
    assert record.training_status == TrainingStatus.FAILED.value
    assert f"stopped during training {MAX_ATTEMPTS} times" in record.training_error
    assert [(e.type, e.job_id) for e in events] == [(FAILED, dead)]
    assert drain(ctx) == 0 and len(events) == 1  # nothing left to tell


def test_a_trainer_that_loses_its_lease_stops_without_writing(world) -> None:
    ctx, services, trainer, events, _ = world
    job_id = _train(services).data["job_id"]
    trainer.release.clear()

    def steal(epoch: int) -> None:
        if epoch == 1:  # another trainer decides this one is dead (its lease looks expired) and takes the job
            assert ctx.jobs.claim(job_id, "usurper", ctx.clock() + 10_000, 60)
            beat = next(t for t in threading.enumerate() if t.name == f"heartbeat-{job_id}")
            beat.join(timeout=10)  # its next beat finds the job taken, marks the lease lost and ends
            assert not beat.is_alive(), "the heartbeat never noticed that another trainer took the job"

    trainer.on_epoch = steal
    trainer.release.set()
    drain(ctx)
    assert _status(services).model_version is None
    assert FINISHED not in [e.type for e in events]


def test_a_failing_event_subscriber_never_fails_the_job(world) -> None:
    ctx, services, _, _, _ = world

    def broken(event) -> None:
        raise ConnectionError("chat API down")

    ctx.events.subscribe(broken)
    _train(services)
    drain(ctx)
    assert _status(services).training_status == TrainingStatus.SUCCESSFUL.value


def test_thread_launcher_trains_in_the_background(world) -> None:
    ctx, services, _, events, _ = world
    services.launcher = ThreadLauncher(lambda: drain(ctx))
    _train(services)
    services.launcher.threads[0].join(timeout=30)
    assert _status(services).training_status == TrainingStatus.SUCCESSFUL.value


def test_long_runs_report_about_twenty_progress_steps_including_the_last(world) -> None:
    ctx, services, trainer, events, _ = world
    trainer.epochs = 100
    _train(services)
    drain(ctx)
    epochs = [e.payload["epoch"] for e in events if e.type == PROGRESS]
    assert 10 <= len(epochs) <= 21 and epochs[0] == 1 and epochs[-1] == 100
    assert all(e.payload["total"] == 100 for e in events if e.type == PROGRESS)
