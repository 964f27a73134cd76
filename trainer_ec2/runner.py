"""The job lifecycle on one trainer: receive a ticket, take the job the fair order puts first, train it under
a lease, store the model, notify, delete the ticket.

A ticket (an SQS message on AWS, a row locally) means "a job is waiting"; which job the receiver trains is
platform_core.scheduling's fair order over the queued jobs (and jobs whose trainer died), so one tenant's
backlog never starves another. While training, a heartbeat extends the job's lease, the ticket's visibility
and this machine's MachineStatus row. If the trainer dies, the ticket is delivered again after its
visibility timeout, the lease has expired by then, and the next trainer retries the job (MAX_ATTEMPTS in
all, then it fails and the user is told). A job is claimed and finished by conditional writes, so a
duplicate delivery never trains twice.

``drain`` runs tickets until the queue is empty (the local worker, tests); ``Worker`` long-polls for ever
(the deployed trainer, started by trainer_ec2.app).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from platform_core.events import FINISHED, PROGRESS, TrainingEvent
from platform_core.ports import BlobStore, DatasetRepository, EventBus, JobQueue, MachineLock, TrainingQueue
from platform_core.jobs import MAX_ATTEMPTS, Job, JobState, Ticket
from platform_core.models import ModelArtifacts, next_version, store_model
from platform_core.records import TrainingStatus
from platform_core.scheduling import fair_order
from platform_core.reconcile import DIED
from platform_core.training import fail_job
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


def preload() -> None:
    """Import what a first job would otherwise import on its own clock (torch, torchvision, onnxruntime, the
    ONNX exporter, matplotlib for the confusion matrix: about a second): a trainer does it once as it starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import torch.onnx  # noqa: F401

    from trainer_ec2 import image_training, text_training  # noqa: F401


def _no_protection(protect: bool) -> None:
    """Locally nothing scales in; on AWS this is platform_core.adapters.aws_fleet.ScaleInProtection."""


@dataclass
class TrainerContext:
    blobs: BlobStore
    records: DatasetRepository
    jobs: JobQueue
    lock: MachineLock
    events: EventBus
    queue: TrainingQueue
    machine: str = "local"
    pool: str = "cpu"
    # The lease is shorter than the ticket's visibility: when a dead trainer's ticket is delivered again,
    # its job's lease has already expired and the receiver takes the job over.
    lease_s: float = 240.0
    visibility_s: float = 300.0
    heartbeat_s: float = 30.0
    max_attempts: int = MAX_ATTEMPTS
    clock: Callable[[], float] = time.time
    trainers: dict[str, TrainFn] = field(default_factory=default_trainers)
    protect: Callable[[bool], None] = _no_protection  # scale-in protection while training
    epochs: int | None = None  # overrides each recipe's epochs (tests, demos)


BUSY = -1  # another worker holds this machine


def drain(ctx: TrainerContext, *, wait_s: float = 0.0, forever: bool = False,
          stop: threading.Event | None = None) -> int:
    """Work through tickets one at a time; returns how many jobs ran.

    Returns when no ticket comes within ``wait_s`` (unless ``forever``), when ``stop`` is set, or when another
    worker holds this machine (it works through the rest when it is done)."""
    ran = 0
    while stop is None or not stop.is_set():
        if _machine_busy(ctx):  # never hold a ticket we cannot work on: every delivery counts towards the DLQ
            if not forever:
                return ran
            (stop or threading.Event()).wait(min(wait_s, 5.0) or 1.0)
            continue
        ticket = ctx.queue.receive(wait_s, ctx.visibility_s)
        if ticket is None:
            if forever:
                continue
            return ran
        outcome = work(ctx, ticket)
        if outcome == BUSY:
            return ran
        ran += outcome
    return ran


def _machine_busy(ctx: TrainerContext) -> bool:
    """Another worker on this machine is training (local workers share a laptop)."""
    status = ctx.lock.get(ctx.machine)
    return status is not None and status.State == "Busy" and not status.expired(ctx.clock())


def work(ctx: TrainerContext, ticket: Ticket) -> int:
    """One ticket: train the job the fair order puts first (1), find nothing left to do (0: the ticket was
    spare and is deleted), or find this machine busy (BUSY: the ticket goes back at once)."""
    for job in candidates(ctx, ticket):
        if job.attempts >= ctx.max_attempts:  # it stopped its trainer every time it ran
            fail_job(ctx.jobs, ctx.records, ctx.events, job, DIED.format(n=job.attempts), ctx.clock())
            continue
        if not ctx.lock.acquire(ctx.machine, job.job_id, ctx.lease_s, ctx.clock()):
            ctx.queue.release(ticket)
            return BUSY
        try:
            if not ctx.jobs.claim(job.job_id, ctx.machine, ctx.clock(), ctx.lease_s):
                continue  # another trainer took it first: try the next
            ctx.protect(True)
            try:
                run_job(ctx, replace(job, state=JobState.RUNNING.value, trainer=ctx.machine,
                                     attempts=job.attempts + 1), ticket)
            except BaseException:  # the worker is stopping (not a training failure): hand the ticket back
                ctx.queue.release(ticket)
                raise
            finally:
                ctx.protect(False)
        finally:
            ctx.lock.release(ctx.machine, job.job_id)
        ctx.queue.delete(ticket)
        return 1
    log.info("no job to take for ticket of %s: deleting it as a spare", ticket.job_id or "an unknown job",
             extra={"job_id": ticket.job_id})
    ctx.queue.delete(ticket)  # every job is taken or done: this ticket was a spare (a duplicate, a re-send)
    return 0


def candidates(ctx: TrainerContext, ticket: Ticket) -> list[Job]:
    """The jobs of this trainer's pool that it may take, in the order it tries them: queued jobs and jobs whose
    trainer died (lease expired), fair between tenants given who is training now. The ticket's own job is
    read directly, so a job the index has not caught up with yet is still found."""
    now = ctx.clock()
    mine = [j for j in ctx.jobs.queued() + ctx.jobs.running() if j.pool == ctx.pool]
    own = ctx.jobs.get(ticket.job_id) if ticket.job_id else None
    if own is not None and own.pool == ctx.pool:
        mine = [j for j in mine if j.job_id != own.job_id] + [own]
    takeable = [j for j in mine if j.state == JobState.QUEUED.value or j.lease_expired(now)]
    training = [j for j in mine if j.state == JobState.RUNNING.value and not j.lease_expired(now)]
    return fair_order(takeable, training, ctx.jobs.served({j.tenant for j in takeable}))


def run_job(ctx: TrainerContext, job: Job, ticket: Ticket | None = None) -> None:
    """Train one claimed job; every outcome ends in Successful or Failed with a readable reason, unless the
    job was taken over (its lease lost) or the worker is stopping (then it is retried elsewhere)."""
    lost = threading.Event()
    beat = _Heartbeat(ctx, job, ticket, lost)
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
        if ctx.jobs.finish(job.job_id, JobState.SUCCEEDED, ctx.clock(), model_version=stored.version,
                           trainer=ctx.machine):
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
    except Exception as exc:  # noqa: BLE001 - every failure must reach the user
        log.exception("job %s failed", job.job_id)
        fail_job(ctx.jobs, ctx.records, ctx.events, job, failure_reason(exc, job.kind), ctx.clock(),
                 trainer=ctx.machine)
    finally:
        beat.stop()


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
    """While training: extends the job's lease, the ticket's visibility and the machine's row; sets ``lost``
    when the job is no longer this trainer's (its lease expired and another trainer took it over)."""

    def __init__(self, ctx: TrainerContext, job: Job, ticket: Ticket | None, lost: threading.Event) -> None:
        self.ctx, self.job, self.ticket, self.lost = ctx, job, ticket, lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        ctx = self.ctx
        while not self._stop.wait(ctx.heartbeat_s):
            try:
                now = ctx.clock()
                if not ctx.jobs.heartbeat(self.job.job_id, ctx.machine, now, ctx.lease_s):
                    self.lost.set()
                    return
                ctx.lock.heartbeat(ctx.machine, self.job.job_id, ctx.lease_s, now)
                if self.ticket is not None and not ctx.queue.extend(self.ticket, ctx.visibility_s):
                    log.info("ticket for job %s is no longer held; the job's lease still holds it", self.job.job_id)
            except Exception:  # a transient store error: try again at the next beat
                log.warning("heartbeat failed for job %s", self.job.job_id, exc_info=True)


class Worker:
    """The deployed trainer's loop: long-polls its pool's queue for ever in a daemon thread, one job at a time;
    an error (the queue unreachable for a moment) is logged and retried after a pause."""

    def __init__(self, ctx: TrainerContext, *, wait_s: float = 20.0, pause_s: float = 5.0) -> None:
        self.ctx, self._wait, self._pause = ctx, wait_s, pause_s
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Worker":
        self._thread = threading.Thread(target=self._loop, name="trainer-worker", daemon=True)
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        preload()
        while not self.stopping.is_set():
            try:
                drain(self.ctx, wait_s=self._wait, forever=True, stop=self.stopping)
            except Exception:
                log.exception("the worker loop failed; retrying in %.0f s", self._pause)
                self.stopping.wait(self._pause)
