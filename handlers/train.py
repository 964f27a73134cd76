"""`train NAME`: queue a training job (or join the one already queued) and answer at once."""
from __future__ import annotations

import time
from dataclasses import replace

from handlers.commands import Command, Reply
from handlers.datasets import named_record
from handlers.notify import watch
from handlers.replies import error_reply
from handlers.services import Services
from platform_core.errors import ConcurrentUpdate, MlbotError, UsageError
from platform_core.jobs import RECIPES, Job, JobState
from platform_core.recordkeeping import update_record
from platform_core.records import DatasetRecord, TrainingStatus, utc_now



def handle_train(cmd: Command, services: Services, *, reply_to: dict | None = None) -> Reply:
    """Queue training of the tenant's dataset; the reply says the queue position."""
    try:
        job, joined = queue_training(cmd, services, reply_to or {})
        position = queue_position(services, job)
    except MlbotError as exc:
        return error_reply(exc)
    where = "training now" if position == 0 else f"position {position} in the queue"
    if joined:
        told = _also_tell(services, job, reply_to)
        text = f"'{job.name}' is already queued for training ({where}); " + (
            "you will hear here when it is done." if told else f"follow it with: status {job.name}")
    else:
        text = (f"Queued '{job.name}' for training ({job.kind}, {job.recipe} recipe): {where}. "
                "Progress and results will be posted here.")
    return Reply(text, data={"job_id": job.job_id, "position": position, "joined": joined,
                             "name": job.name, "recipe": job.recipe})


def _also_tell(services: Services, job: Job, reply_to: dict | None) -> bool:
    """Whether this chat will hear about the job it joined (it asked first, or is now a watcher)."""
    here = dict(reply_to or {})
    if here == job.reply_to:
        return True
    if not here or services.notifications is None:
        return False
    try:
        watch(services.notifications, job.job_id, reply_to)
    except MlbotError:
        return False
    return True


def queue_training(cmd: Command, services: Services, reply_to: dict) -> tuple[Job, bool]:
    """Submit a job for the dataset, or return the active one (a repeated request joins it)."""
    if services.jobs is None or services.launcher is None:
        raise UsageError("train is not available here: no trainer is configured")
    record = named_record(cmd, services, "train NAME [recipe]")
    name = record.name
    active = services.jobs.active_for(cmd.tenant, name) or _being_queued(services, record)
    if active is not None:
        if active.state == JobState.QUEUED.value:
            services.launcher(active)  # a repeated request retries a trainer start that failed (idempotent)
        return active, True
    job = _new_job(cmd, services, record, reply_to)
    queued = replace(record, training_status=TrainingStatus.QUEUED.value, last_job_id=job.job_id,
                     revision=record.revision + 1, updated_at=utc_now())
    try:
        # The conditional write is the race guard: of two simultaneous requests only one gets here.
        services.records.replace(queued, expected_revision=record.revision)
    except ConcurrentUpdate:
        # Another request won the write a moment ago; its job may not be submitted yet: join it.
        current = services.records.get(cmd.tenant, name)
        active = services.jobs.active_for(cmd.tenant, name) or (current and _being_queued(services, current))
        if active is not None:
            return active, True
        raise
    try:
        job = services.jobs.submit(replace(job, enqueued_at=0.0))  # the store stamps it, in insert order
    except MlbotError:
        update_record(services.records, cmd.tenant, name,
                      lambda r: replace(r, training_status=record.training_status))
        raise
    services.launcher(job)
    return job, False


def _being_queued(services: Services, record: DatasetRecord, wait_s: float = 3.0) -> Job | None:
    """The job a racing request has just written into the record but not yet submitted, once it is.

    Between a winner's conditional record write and its job submit there is a gap; a request landing in
    it joins that job rather than queuing a second one. A winner that died in the gap is waited for only
    ``wait_s`` (its record then says Queued with no job, and a new job is queued)."""
    assert services.jobs is not None
    if record.training_status != TrainingStatus.QUEUED.value or not record.last_job_id:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        job = services.jobs.get(record.last_job_id)
        if job is not None:
            return job if job.state in (JobState.QUEUED.value, JobState.RUNNING.value) else None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _new_job(cmd: Command, services: Services, record: DatasetRecord, reply_to: dict) -> Job:
    recipes = RECIPES[record.kind]
    recipe = cmd.args[1].lower() if len(cmd.args) > 1 else recipes[0]
    if recipe not in recipes:
        raise UsageError(f"train NAME [{' | '.join(recipes)}] (for a {record.kind} dataset)")
    return Job(job_id=services.new_id(), tenant=cmd.tenant, name=record.name, kind=record.kind, recipe=recipe,
               dataset_path=record.dataset_path, dataset_version=record.dataset_version,
               requested_by=cmd.user, reply_to=reply_to, enqueued_at=services.clock())


def queue_position(services: Services, job: Job) -> int:
    """0 while training (or finished), else the 1-based place among queued jobs."""
    assert services.jobs is not None
    current = services.jobs.get(job.job_id)
    if current is None or current.state != JobState.QUEUED.value:
        return 0
    ids = [j.job_id for j in services.jobs.queued()]
    return ids.index(job.job_id) + 1 if job.job_id in ids else 0
