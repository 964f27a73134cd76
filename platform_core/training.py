"""Submitting training: the one path from "train NAME" (chat, CLI, the trainer's HTTP API) to a queued job and
its ticket on the training queue; the one queue-position rule; and the one way a job ends in failure.

A dataset has at most one active (queued or running) job. Racing requests never make two: the job id is
derived from the dataset record's state, so every request that read the same record submits the same id,
and the queue stores it once (``JobQueue.submit`` is idempotent on the id). Whoever stored it asked; the
others join it. No waiting and no polling.
"""
from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Callable, Mapping

from platform_core.errors import MlbotError
from platform_core.events import FAILED, TrainingEvent
from platform_core.jobs import ACTIVE_STATES, RECIPES, Job, JobState, ReplyTo
from platform_core.ports import DatasetRepository, EventBus, JobQueue, TrainingQueue
from platform_core.recordkeeping import update_record
from platform_core.records import DatasetRecord, TrainingStatus
from platform_core.scheduling import jobs_ahead, pool_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    """The dataset's active job, and whether this request joined one that someone else queued."""

    job: Job
    joined: bool


def job_id_for(record: DatasetRecord) -> str:
    """The id of the job that trains the record as it is now (every request reading it agrees)."""
    state = "\0".join((record.tenant, record.name, record.created_at, str(record.revision),
                       record.last_job_id or "", str(record.dataset_version)))
    return hashlib.sha256(state.encode("utf-8")).hexdigest()[:16]


def submit_training(jobs: JobQueue, queues: Mapping[str, TrainingQueue], records: DatasetRepository,
                    record: DatasetRecord, *, recipe: str, requested_by: str, reply_to: ReplyTo | None,
                    job_id: str | None = None, new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16]) -> Submitted:
    """Queue a job training ``record`` with ``recipe`` (one of RECIPES[record.kind]), or join its active one.

    ``job_id`` is a caller's own idempotency key (the trainer API's); by default the id comes from the record.
    ``queues`` are the pools' training queues; the recipe picks the pool (platform_core.scheduling.pool_for).

    The job is stored first, then one ticket is sent, then the record says Queued. If the queue refuses the
    ticket, the job is ended (Failed) and the error raised: the user hears that nothing was queued, and a
    retry queues afresh. A crash between the first two steps leaves a queued job without a ticket, which
    the reconciler finds and sends again; never a record promising a job that does not exist."""
    if recipe not in RECIPES[record.kind]:
        raise ValueError(f"{recipe!r} is not a {record.kind} recipe")
    active = jobs.active_for(record.tenant, record.name)
    if active is not None:
        return Submitted(active, joined=True)
    mine = Job(job_id=job_id or job_id_for(record), tenant=record.tenant, name=record.name, kind=record.kind,
               recipe=recipe, dataset_path=record.dataset_path, dataset_version=record.dataset_version,
               requested_by=requested_by, reply_to=reply_to, enqueued_at=0.0,  # the store stamps it
               pool=pool_for(recipe, queues))
    stored = jobs.submit(mine)
    if job_id is not None and stored.job_id == job_id and stored.state not in ACTIVE_STATES:
        return Submitted(stored, joined=True)  # the caller's key of a job that ran already: never twice
    if stored.state not in ACTIVE_STATES:  # the id of a job that ended with the record unchanged after it
        mine = replace(mine, job_id=new_id())
        stored = jobs.submit(mine)
    joined = (stored.requested_by, _key(stored.reply_to)) != (mine.requested_by, _key(mine.reply_to))
    if not joined:
        try:  # a racing twin may send a second ticket: trainers drop spare ones
            queues[stored.pool].send(stored)
        except MlbotError:  # the queue refused it: end the job, so nothing is left half-queued, and say so
            jobs.finish(stored.job_id, JobState.FAILED, time.time(), error="the training queue was unavailable")
            raise
        update_record(records, record.tenant, record.name, lambda r: _queued(r, stored))
    return Submitted(stored, joined)


def _key(reply_to: ReplyTo | None) -> str | None:
    return reply_to.key if reply_to else None


def _queued(record: DatasetRecord, job: Job) -> DatasetRecord:
    if record.last_job_id == job.job_id and record.training_status != TrainingStatus.QUEUED.value:
        return record  # the trainer got there first (it is already training or done): leave its word
    return replace(record, training_status=TrainingStatus.QUEUED.value, last_job_id=job.job_id)


def queue_position(jobs: JobQueue, job: Job) -> int:
    """0 while training (or finished), else the 1-based place among its pool's queued jobs in the order
    trainers take them (fair between tenants: platform_core.scheduling)."""
    current = jobs.get(job.job_id)
    if current is None or current.state != JobState.QUEUED.value:
        return 0
    waiting = [j for j in jobs.queued() if j.pool == current.pool and j.job_id != current.job_id] + [current]
    training = [j for j in jobs.running() if j.pool == current.pool]
    ahead = jobs_ahead(current.job_id, waiting, training, jobs.served({j.tenant for j in waiting}))
    return 0 if ahead is None else ahead + 1


def fail_job(jobs: JobQueue, records: DatasetRepository, events: EventBus, job: Job, reason: str, now: float, *,
             trainer: str | None = None) -> bool:
    """End ``job`` as Failed with ``reason`` (a sentence for the user), mark its dataset, and tell its chat,
    exactly once: False, and nothing written or said, if the job had already ended (or, with ``trainer``,
    another trainer holds it)."""
    if not jobs.finish(job.job_id, JobState.FAILED, now, error=reason, trainer=trainer):
        return False
    try:
        update_record(records, job.tenant, job.name, lambda r: replace(
            r, training_status=TrainingStatus.FAILED.value, training_error=reason)
            if r.last_job_id in (None, job.job_id) else r)
    except Exception:  # the record may be gone; the user is still told
        log.exception("could not mark %s/%s failed", job.tenant, job.name)
    try:
        events.publish(TrainingEvent(FAILED, job.job_id, job.tenant, job.name, job.reply_to, {"reason": reason}))
    except Exception:  # a lost notification never fails the caller
        log.exception("could not publish %s for job %s", FAILED, job.job_id)
    return True
