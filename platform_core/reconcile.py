"""The reconciler's rules (run every 5 minutes on AWS by bot.reconciler, and by local workers): nothing stays
stranded in the training queue.

- A ticket the queue gave up on (delivered too often: it lands in the dead-letter queue) is sent once more if
  its job is still waiting and has attempts left (trainers may have bounced it without trying it); the
  second time, or when the job has used its attempts, the job fails and the chat that asked is told. An
  operator alarm watches the dead-letter queue too.
- A job whose trainer died ``MAX_ATTEMPTS`` times fails, and its chat is told.
- When a pool has fewer tickets than active jobs (a crash between storing a job and sending its ticket, or
  a spare ticket deleted while its job's trainer later died), a ticket is sent again for each job stranded
  longer than ``stuck_after_s``. A spare ticket costs nothing: a trainer that finds no job deletes it.
- Each pool's trainer group is scaled to its queue (the submit path's scale-out, again): when asking for a
  trainer failed at submit (no capacity, a throttled API), this is the retry that happens by itself, every
  pass. It is bounded: a job still queued after ``max_queued_s`` (6 hours) fails and its chat is told.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping

from platform_core.jobs import ACTIVE_STATES, MAX_ATTEMPTS, Job, JobState
from platform_core.ports import DatasetRepository, EventBus, JobQueue, TrainingQueue
from platform_core.training import fail_job

log = logging.getLogger(__name__)
GAVE_UP = ("training could not start: the trainers gave up on this job after {n} tries (the operator has "
           "been alerted); train again to retry")
DIED = ("the trainer stopped during training {n} times (it may have run out of memory or been replaced); "
        "try a smaller dataset or the default recipe")
STUCK_AFTER_S = 600.0
MAX_QUEUED_S = 6 * 3600.0
WAITED_TOO_LONG = ("no trainer could take it within {hours} hours (the operator has been alerted); train again "
                   "later")


@dataclass
class Reconciled:
    """What one pass found and did."""

    resent: list[str] = field(default_factory=list)  # job ids given a new ticket
    failed: list[str] = field(default_factory=list)  # job ids failed (and their chats told)
    dead_letters: int = 0
    queued: int = 0
    running: int = 0
    oldest_queued_s: float = 0.0
    longest_running_s: float = 0.0

    def metrics(self) -> dict[str, float]:
        """The figures the stack's alarms and dashboards read (CloudWatch, via the reconciler's EMF)."""
        return {"OldestQueuedJobMinutes": round(self.oldest_queued_s / 60, 2),
                "LongestRunningJobMinutes": round(self.longest_running_s / 60, 2),
                "QueuedJobs": float(self.queued), "RunningJobs": float(self.running),
                "ResentTickets": float(len(self.resent)), "FailedStrandedJobs": float(len(self.failed)),
                "DeadLetters": float(self.dead_letters)}


def reconcile(jobs: JobQueue, records: DatasetRepository, events: EventBus, queues: Mapping[str, TrainingQueue],
              now: float, *, scale: Callable[[str], object] | None = None, stuck_after_s: float = STUCK_AFTER_S,
              max_attempts: int = MAX_ATTEMPTS, max_queued_s: float = MAX_QUEUED_S) -> Reconciled:
    """One pass over every pool (module docstring); safe to run twice at once (every write is conditional)."""
    done = Reconciled()
    for pool, queue in queues.items():
        for letter in _all_dead_letters(queue):
            done.dead_letters += 1
            job = jobs.get(letter.job_id) if letter.job_id else None
            if job is not None and job.state in ACTIVE_STATES and not _training(job, now):
                if letter.generation == 0 and job.attempts < max_attempts:
                    queues.get(job.pool, queue).send(job, generation=1)
                    done.resent.append(job.job_id)
                elif fail_job(jobs, records, events, job, GAVE_UP.format(n=max_attempts), now):
                    done.failed.append(job.job_id)
            queue.remove_dead_letter(letter)
    queued, running = jobs.queued(), jobs.running()
    done.queued, done.running = len(queued), len(running)
    done.oldest_queued_s = max((now - j.enqueued_at for j in queued), default=0.0)
    done.longest_running_s = max((now - (j.started_at or now) for j in running if not j.lease_expired(now)),
                                 default=0.0)
    for job in running:
        if job.lease_expired(now) and job.attempts >= max_attempts:
            if fail_job(jobs, records, events, job, DIED.format(n=job.attempts), now):
                done.failed.append(job.job_id)
    for job in queued:
        if now - job.enqueued_at > max_queued_s and fail_job(
                jobs, records, events, job, WAITED_TOO_LONG.format(hours=round(max_queued_s / 3600)), now):
            done.failed.append(job.job_id)
    for pool, queue in queues.items():
        active = [j for j in queued + running if j.pool == pool and j.job_id not in done.failed]
        deficit = len(active) - queue.depth().total
        stranded = sorted((j for j in active if _stranded(j, now, stuck_after_s)), key=lambda j: j.enqueued_at)
        for job in stranded[:max(deficit, 0)]:
            queue.send(job)
            done.resent.append(job.job_id)
            log.warning("job %s had no ticket in the %s queue; sent one again", job.job_id, pool,
                        extra={"job_id": job.job_id})
        if scale is not None and active:
            try:
                scale(pool)
            except Exception:  # the alarm-driven scaling policy is the backstop of this backstop
                log.exception("could not scale the %s pool", pool)
    if done.failed or done.resent:
        log.info("reconciled: %d failed, %d tickets sent again, %d dead letters", len(done.failed),
                 len(done.resent), done.dead_letters)
    return done


def _all_dead_letters(queue: TrainingQueue, limit: int = 100):
    seen = 0
    while seen < limit:
        batch = queue.dead_letters(10)
        if not batch:
            return
        for letter in batch:
            seen += 1
            yield letter


def _training(job: Job, now: float) -> bool:
    return job.state == JobState.RUNNING.value and not job.lease_expired(now)


def _stranded(job: Job, now: float, stuck_after_s: float) -> bool:
    if job.state == JobState.QUEUED.value:
        return now - job.enqueued_at >= stuck_after_s
    return job.lease_expired(now)
