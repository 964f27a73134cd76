"""The trainer's one wiring function: stores, jobs table, its pool's training queue, lock, events and (on AWS)
scale-in protection, over the backend settings name."""
from __future__ import annotations

from platform_core.backend import Backend, backend_for
from platform_core.config import Settings
from platform_core.ports import EventBus
from trainer_ec2.runner import TrainerContext


def build_trainer_context(settings: Settings, *, events: EventBus | None = None, backend: Backend | None = None,
                          **overrides) -> TrainerContext:
    """Local: files and SQLite under $MLBOT_HOME, in-process events. AWS: S3, DynamoDB, SQS, SNS (one client
    each), and the instance's scale-in protection in its Auto Scaling group (MLBOT_TRAINER_GROUP)."""
    backend = backend or backend_for(settings)
    pool = settings.trainer_pool
    group = settings.trainer_groups.get(pool)
    if backend.name == "aws" and group and "protect" not in overrides:
        from platform_core.adapters.aws_fleet import ScaleInProtection

        overrides["protect"] = ScaleInProtection(group=group, instance_id=settings.machine_id,
                                                 client=backend.client("autoscaling"))
    return TrainerContext(blobs=backend.blobs, records=backend.records, jobs=backend.jobs, lock=backend.lock,
                          events=events or backend.events, queue=backend.queue(pool), machine=settings.machine_id,
                          pool=pool, **overrides)
