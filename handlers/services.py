"""The dependencies use cases receive, built by each deployable's one wiring function."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Protocol

from platform_core.config import Limits
from platform_core.jobs import Job, JobQueue
from platform_core.ports import BlobStore, DatasetRepository, NotificationLog
from platform_core.prediction import PredictionService


class TrainerLauncher(Protocol):
    """Makes sure a trainer will run a queued job (local: in process or a child; AWS: start EC2, POST)."""

    def __call__(self, job: Job) -> None: ...


@dataclass
class Services:
    blobs: BlobStore
    records: DatasetRepository
    limits: Limits = field(default_factory=Limits)
    jobs: JobQueue | None = None
    launcher: TrainerLauncher | None = None
    predictor: PredictionService | None = None  # platform_core.prediction's contract
    notifications: NotificationLog | None = None  # who is told about a job (handlers.notify)
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex[:12])
    clock: Callable[[], float] = time.time
