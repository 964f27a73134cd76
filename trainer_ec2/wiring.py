"""The trainer's one wiring function: stores, queue, lock and events from settings."""
from __future__ import annotations

from platform_core.config import Settings
from platform_core.events import EventBus, LocalEventBus
from platform_core.storage import build_storage
from trainer_ec2.runner import TrainerContext


def build_trainer_context(settings: Settings, *, events: EventBus | None = None, **overrides) -> TrainerContext:
    """Local: files and SQLite under $MLBOT_HOME, in-process events. AWS: S3, DynamoDB, SNS."""
    if settings.backend == "aws":
        from platform_core.adapters.aws import make_boto3_client
        from platform_core.adapters.aws_events import SnsEventBus
        from platform_core.adapters.aws_jobs import DynamoJobQueue, DynamoMachineLock

        dynamodb = make_boto3_client("dynamodb", settings)
        blobs, records = build_storage(settings, dynamodb=dynamodb)
        return TrainerContext(
            blobs=blobs, records=records,
            jobs=DynamoJobQueue(table_name=settings.job_table, client=dynamodb),
            lock=DynamoMachineLock(table_name=settings.machine_table, client=dynamodb),
            events=events or SnsEventBus(topic_arn=settings.topic_arn, client=make_boto3_client("sns", settings)),
            machine=settings.machine_id, **overrides)
    from platform_core.adapters.local_jobs import SqliteJobQueue, SqliteMachineLock

    blobs, records = build_storage(settings)
    return TrainerContext(
        blobs=blobs, records=records,
        jobs=SqliteJobQueue(settings.home / "jobs.sqlite3"),
        lock=SqliteMachineLock(settings.home / "jobs.sqlite3"),
        events=events or LocalEventBus(), machine=settings.machine_id, **overrides)
