"""`train NAME [recipe]`: queue a training job (or join the one already queued) and answer at once."""
from __future__ import annotations

import logging

from handlers.commands import Command, Reply
from handlers.datasets import named_record
from handlers.notify import watch
from handlers.permissions import require_owner_or_admin
from handlers.services import Services
from platform_core.errors import MlbotError, TrainerUnavailable, UsageError
from platform_core.jobs import RECIPES, Job, JobState, ReplyTo
from platform_core.training import Submitted, queue_position, submit_training
from platform_core.records import BUSY_STATUSES
from platform_core.reconcile import MAX_QUEUED_S

log = logging.getLogger(__name__)


def handle_train(cmd: Command, services: Services, *, reply_to: ReplyTo | None = None) -> Reply:
    """Queue training of the tenant's dataset; the reply says the queue position."""
    submitted, starting, unavailable = queue_training(cmd, services, reply_to)
    job = submitted.job
    position = queue_position(services.jobs, job)
    where = "training now" if position == 0 else f"position {position} in the queue"
    if submitted.joined:
        told = _also_tell(services, job, reply_to)
        text = f"'{job.name}' is already queued for training ({where}); " + (
            "you will hear here when it is done." if told else f"follow it with: status {job.name}")
    else:
        text = (f"Queued '{job.name}' for training ({job.kind}, {job.recipe} recipe): {where}. "
                "Progress and results will be posted here.")
    if unavailable:
        text += (f" No trainer could be started just now; the training stays queued, and a trainer is asked for "
                 f"again every 5 minutes (for up to {round(MAX_QUEUED_S / 3600)} hours; then you are told here). "
                 "Nothing to do on your side.")
    elif starting and position:
        text += " A trainer is starting up; training begins as soon as it is ready (usually within a minute)."
    return Reply(text, data={"job_id": job.job_id, "position": position, "joined": submitted.joined,
                             "name": job.name, "recipe": job.recipe, "trainer_starting": starting,
                             "trainer_unavailable": unavailable})


def queue_training(cmd: Command, services: Services, reply_to: ReplyTo | None) -> tuple[Submitted, bool, bool]:
    """Submit a job for the dataset (or join its active one), then make sure a trainer will run it.

    Returns the submission, whether a trainer is still starting for it (none was ready to take it: the job
    stays queued and runs when one comes up), and whether asking for a trainer failed (then the reconciler
    asks again on each pass, and fails the job if it is still queued after MAX_QUEUED_S)."""
    if services.jobs is None or services.launcher is None or not services.queues:
        raise UsageError("train is not available here: no trainer is configured")
    record = named_record(cmd, services, "train NAME [recipe]")
    recipes = RECIPES[record.kind]
    recipe = cmd.args[1].lower() if len(cmd.args) > 1 else recipes[0]
    if recipe not in recipes:
        raise UsageError(f"train NAME [{' | '.join(recipes)}] (for a {record.kind} dataset)")
    if record.training_status not in BUSY_STATUSES:  # joining a queued or running job switches nothing
        require_owner_or_admin(cmd, record, "train")
    submitted = submit_training(services.jobs, services.queues, services.records, record, recipe=recipe,
                                requested_by=cmd.user, reply_to=reply_to, new_id=services.new_id)
    if submitted.job.state != JobState.QUEUED.value:
        return submitted, False, False
    try:
        return submitted, bool(services.launcher(submitted.job)), False  # idempotent: scaling twice asks once
    except TrainerUnavailable as exc:
        log.warning("job %s queued; could not ask for a trainer yet: %s", submitted.job.job_id, exc.detail,
                    extra={"job_id": submitted.job.job_id})
        return submitted, True, True


def _also_tell(services: Services, job: Job, reply_to: ReplyTo | None) -> bool:
    """Whether this chat will hear about the job it joined (it asked first, or is now a watcher)."""
    if reply_to is None:
        return False
    if job.reply_to is not None and job.reply_to.key == reply_to.key:
        return True
    if services.notifications is None:
        return False
    try:
        watch(services.notifications, job.job_id, reply_to)
    except MlbotError:
        return False
    return True
