"""The reconciler Lambda (template.yaml ReconcilerFunction, every 5 minutes): fixes what the training queue
stranded (platform_core.reconcile) and publishes the queue's health as CloudWatch metrics that the stack's
alarms watch (docs/RELIABILITY.md "Alarms").

Metrics leave as embedded-metric-format log lines (Powertools): LongestRunningJobMinutes high means a
trainer is hung on one job; DeadLetters, ResentTickets and FailedStrandedJobs count what it fixed. The
queue's own wait is SQS's ApproximateAgeOfOldestMessage, which costs nothing to watch. With no job queued
or running and nothing fixed, no metric is sent: CloudWatch bills custom metrics by the hour they arrive,
so an idle stack pays nothing for them (the alarm treats missing data as fine).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from platform_core.adapters.aws_powertools import lambda_entry, publish_metrics
from platform_core.backend import Backend, backend_for
from platform_core.config import Settings
from platform_core.reconcile import Reconciled, reconcile
from platform_core.retention import purge_departed

log = logging.getLogger(__name__)


def run(backend: Backend, scale: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.time) -> Reconciled:
    """One reconciliation over ``backend``'s queues, then the data of workspaces gone longer than the retention
    period deleted (platform_core.retention); publishes and returns what it found."""
    done = reconcile(backend.jobs, backend.records, backend.events, backend.queues, clock(), scale=scale)
    purge_departed(backend.records, backend.blobs, clock(), backend.settings.departed_retention_days * 86400.0)
    figures = done.metrics()
    if any(figures.values()):  # custom metrics are billed by the hour they are sent: an idle stack sends none
        publish_metrics(figures)
    log.info("training queue: %d queued (oldest %.1f min), %d running (longest %.1f min); %d sent again, "
             "%d failed, %d dead letters", done.queued, figures["OldestQueuedJobMinutes"], done.running,
             figures["LongestRunningJobMinutes"], len(done.resent), len(done.failed), done.dead_letters,
             extra={"queue": figures})
    return done


def fleet_scaler(backend: Backend) -> Callable[[str], object]:
    """pool -> raise that pool's trainer group to its queue (the submit path's scaler, platform_core.backend)."""
    return lambda pool: backend.scaler(pool).scale() if pool in backend.settings.trainer_groups else None


_backend: Backend | None = None


@lambda_entry("mlbot-reconciler")
def handler(event: Any, context: Any = None) -> dict[str, float]:
    """AWS Lambda entry point (template.yaml: bot.reconciler.handler), on a 5-minute schedule."""
    global _backend
    if _backend is None:
        _backend = backend_for(Settings.from_env())
    return run(_backend, scale=fleet_scaler(_backend)).metrics()
