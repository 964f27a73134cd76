"""The job lifecycle on one trainer machine: take the lock, train the next queued job, store, notify.

Flask (trainer_ec2.app) and the local backend both call ``drain``; it returns when the queue is empty or
another worker holds this machine's lock.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from platform_core.events import FAILED, FINISHED, PROGRESS, TrainingEvent
from platform_core.ports import BlobStore, DatasetRepository, EventBus, JobQueue, MachineLock
from platform_core.jobs import Job, JobState
from platform_core.models import ModelArtifacts, next_version, store_model
from platform_core.records import TrainingStatus
from trainer_ec2.config import TrainConfig, TrainingResult
from trainer_ec2.failures import LeaseLost, failure_reason
from platform_core.recordkeeping import update_record

log = logging.getLogger(__name__)
TrainFn = Callable[..., TrainingResult]
MAX_PROGRESS_EVENTS = 20
MISTAKES_IN_EVENT = 10  # an SNS message stays far below its 256 KB


def default_trainers() -> dict[str, TrainFn]:
    """The real training functions, imported only when a job runs (they pull in torch)."""

    def image(data: bytes, config: TrainConfig, progress=None) -> TrainingResult:
        from trainer_ec2.image_training import train_image_classifier

        return train_image_classifier(data, config, progress)

    def sentiment(data: bytes, config: TrainConfig, progress=None) -> TrainingResult:
        from trainer_ec2.text_training import train_sentiment_classifier

        return train_sentiment_classifier(data, config, progress)

    return {"image": image, "sentiment": sentiment}


@dataclass
class TrainerContext:
    blobs: BlobStore
    records: DatasetRepository
    jobs: JobQueue
    lock: MachineLock
    events: EventBus
    machine: str = "local"
    lease_s: float = 120.0
    heartbeat_s: float = 20.0
    clock: Callable[[], float] = time.time
    trainers: dict[str, TrainFn] = field(default_factory=default_trainers)
    epochs: int | None = None  # overrides each recipe's epochs (tests, demos)


def drain(ctx: TrainerContext) -> int:
    """Run queued jobs one at a time under this machine's lock; returns how many ran."""
    ran = 0
    while True:
        recover_expired(ctx)
        queued = ctx.jobs.queued()
        if not queued:
            return ran
        job = queued[0]
        if not ctx.lock.acquire(ctx.machine, job.job_id, ctx.lease_s, ctx.clock()):
            return ran  # the holder drains the queue when it is done
        try:
            if ctx.jobs.claim(job.job_id, ctx.machine, ctx.clock()):
                run_job(ctx, replace(job, state=JobState.RUNNING.value, trainer=ctx.machine))
                ran += 1
        finally:
            ctx.lock.release(ctx.machine, job.job_id)


def recover_expired(ctx: TrainerContext) -> None:
    """A trainer that died leaves its lease to expire: its job is failed and its user told.

    Any trainer looks at every running job's machine, so with several trainers a dead one's job is
    failed by the next that drains, not only when the dead one comes back."""
    machines = {ctx.machine} | {j.trainer for j in ctx.jobs.running() if j.trainer}
    for machine in sorted(machines):
        status = ctx.lock.get(machine)
        if status is None or not status.expired(ctx.clock()) or not status.owner:
            continue
        job = ctx.jobs.get(status.owner)
        if ctx.lock.release(machine, status.owner) and job is not None:
            _fail(ctx, job, "the trainer stopped responding during training (it may have run out of memory "
                            "or been restarted); train again to retry")


def run_job(ctx: TrainerContext, job: Job) -> None:
    """Train one claimed job; every outcome ends in Successful or Failed with a readable reason."""
    lost = threading.Event()
    beat = _Heartbeat(ctx, job, lost)
    beat.start()
    started = ctx.clock()
    try:
        record = update_record(ctx.records, job.tenant, job.name, lambda r: replace(
            r, training_status=TrainingStatus.IN_PROGRESS.value, last_job_id=job.job_id))
        data = ctx.blobs.get(job.dataset_path)
        config = TrainConfig(recipe=job.recipe, epochs=ctx.epochs)
        result = ctx.trainers[job.kind](data, config, _progress(ctx, job, lost, started))
        if lost.is_set():
            raise LeaseLost(job.job_id)
        version = next_version(ctx.blobs, job.tenant, job.name, record.model_version)
        stored = store_model(ctx.blobs, job.tenant, job.name, version, ModelArtifacts(
            result.classes, result.onnx_model, result.preprocess, result.metrics, result.confusion_png,
            result.extra_files))
        metrics = result.metrics
        update_record(ctx.records, job.tenant, job.name, lambda r: replace(
            r, training_status=TrainingStatus.SUCCESSFUL.value, model_path=stored.model_path,
            vocab_path=stored.vocab_path, model_version=stored.version, training_error=None,
            training_accuracy=metrics["train_accuracy"], validation_accuracy=metrics["validation_accuracy"]))
        if ctx.jobs.finish(job.job_id, JobState.SUCCEEDED, ctx.clock(), model_version=stored.version):
            album = {"mistakes_png_key": stored.model_path + "mistakes.png"} \
                if "mistakes.png" in result.extra_files else {}
            _publish(ctx, job, FINISHED, {
                "kind": job.kind, "model_version": stored.version, "model_path": stored.model_path,
                "confusion_png_key": stored.model_path + "confusion.png", "classes": result.classes, **album,
                "mistakes": [{k: m[k] for k in ("input", "true", "predicted", "confidence")}
                             for m in metrics.get("mistakes", [])[:MISTAKES_IN_EVENT]],
                **{k: metrics[k] for k in ("recipe", "train_accuracy", "validation_accuracy", "per_class",
                                           "duration_s", "n_train", "n_validation")}})
    except LeaseLost:
        log.warning("job %s lost its lease; another trainer has taken over", job.job_id)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the user
        log.exception("job %s failed", job.job_id)
        _fail(ctx, job, failure_reason(exc, job.kind))
        if not isinstance(exc, Exception):
            raise
    finally:
        beat.stop()


def _fail(ctx: TrainerContext, job: Job, reason: str) -> None:
    try:
        update_record(ctx.records, job.tenant, job.name, lambda r: replace(
            r, training_status=TrainingStatus.FAILED.value, training_error=reason))
    except Exception:  # the record may be gone; the job still ends and the user is still told
        log.exception("could not mark %s/%s failed", job.tenant, job.name)
    if ctx.jobs.finish(job.job_id, JobState.FAILED, ctx.clock(), error=reason):
        _publish(ctx, job, FAILED, {"reason": reason})


def _progress(ctx: TrainerContext, job: Job, lost: threading.Event, started: float):
    def report(epoch: int, total: int, figures: dict[str, float]) -> None:
        if lost.is_set():
            raise LeaseLost(job.job_id)
        # At most about MAX_PROGRESS_EVENTS per run: chats edit one message, and they rate-limit edits.
        step = max(1, -(-total // MAX_PROGRESS_EVENTS))
        if epoch % step and epoch not in (1, total):
            return
        elapsed = ctx.clock() - started
        eta = elapsed / epoch * (total - epoch) if epoch else None
        _publish(ctx, job, PROGRESS, {"epoch": epoch, "total": total, "elapsed_s": round(elapsed, 1),
                                      "eta_s": None if eta is None else round(eta, 1), **figures})
    return report


def _publish(ctx: TrainerContext, job: Job, kind: str, payload: dict) -> None:
    try:
        ctx.events.publish(TrainingEvent(kind, job.job_id, job.tenant, job.name, job.reply_to, payload))
    except Exception:  # a lost notification never fails the job
        log.exception("could not publish %s for job %s", kind, job.job_id)


class _Heartbeat:
    """Extends the lease while training; sets ``lost`` if another owner has the machine."""

    def __init__(self, ctx: TrainerContext, job: Job, lost: threading.Event) -> None:
        self.ctx, self.job, self.lost = ctx, job, lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.ctx.heartbeat_s):
            try:
                if not self.ctx.lock.heartbeat(self.ctx.machine, self.job.job_id, self.ctx.lease_s, self.ctx.clock()):
                    self.lost.set()
                    return
            except Exception:  # a transient store error: try again at the next beat
                log.warning("heartbeat failed for job %s", self.job.job_id, exc_info=True)
