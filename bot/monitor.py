"""The queue monitor Lambda (template.yaml MonitorFunction, every 5 minutes): the training queue's health as
CloudWatch metrics, which the stack's alarms watch (docs/RELIABILITY.md "Alarms").

OldestQueuedJobMinutes high: no trainer is taking jobs (it failed to start, or the queue is stuck).
LongestRunningJobMinutes high: a trainer is hung on one job. Metrics leave as embedded-metric-format log
lines (Powertools), so the function needs only to read the queue.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from platform_core.adapters.aws_powertools import lambda_entry, publish_metrics
from platform_core.config import Settings
from platform_core.jobs import queue_health
from platform_core.ports import JobQueue

log = logging.getLogger(__name__)


def check(jobs: JobQueue, clock: Callable[[], float] = time.time) -> dict[str, float]:
    """Measure the queue once and publish it; returns the figures."""
    health = queue_health(jobs, clock())
    publish_metrics(health)
    log.info("training queue: %d queued (oldest %.1f min), %d running (longest %.1f min)",
             health["QueuedJobs"], health["OldestQueuedJobMinutes"], health["RunningJobs"],
             health["LongestRunningJobMinutes"], extra={"queue": health})
    return health


def build_jobs(settings: Settings) -> JobQueue:
    from platform_core.adapters.aws import make_boto3_client
    from platform_core.adapters.aws_jobs import DynamoJobQueue

    return DynamoJobQueue(table_name=settings.job_table, client=make_boto3_client("dynamodb", settings))


_jobs: JobQueue | None = None


@lambda_entry("mlbot-monitor")
def handler(event: Any, context: Any = None) -> dict[str, float]:
    """AWS Lambda entry point (template.yaml: bot.monitor.handler), on a 5-minute schedule."""
    global _jobs
    if _jobs is None:
        _jobs = build_jobs(Settings.from_env())
    return check(_jobs)
