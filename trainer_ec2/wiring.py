"""The trainer's one wiring function: stores, queue, lock and events over the backend settings name."""
from __future__ import annotations

from platform_core.backend import Backend, backend_for
from platform_core.config import Settings
from platform_core.ports import EventBus
from trainer_ec2.runner import TrainerContext


def build_trainer_context(settings: Settings, *, events: EventBus | None = None, backend: Backend | None = None,
                          **overrides) -> TrainerContext:
    """Local: files and SQLite under $MLBOT_HOME, in-process events. AWS: S3, DynamoDB, SNS (one client each)."""
    backend = backend or backend_for(settings)
    return TrainerContext(blobs=backend.blobs, records=backend.records, jobs=backend.jobs, lock=backend.lock,
                          events=events or backend.events, machine=settings.machine_id, **overrides)
