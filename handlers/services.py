"""The dependencies use cases receive, built by each deployable's one wiring function."""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from platform_core.config import Limits
from platform_core.ports import (BlobStore, DatasetRepository, JobQueue, NotificationLog, PredictionService,
                                 TrainerLauncher, TrainingQueue)


@dataclass
class Services:
    blobs: BlobStore
    records: DatasetRepository
    limits: Limits = field(default_factory=Limits)
    jobs: JobQueue | None = None
    queues: Mapping[str, TrainingQueue] = field(default_factory=dict)  # per pool of trainers: its queue
    launcher: TrainerLauncher | None = None
    predictor: PredictionService | None = None  # platform_core.prediction's contract
    notifications: NotificationLog | None = None  # who is told about a job (handlers.notify)
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex[:12])
    clock: Callable[[], float] = time.time


class LazyServices:
    """Services built by ``factory`` on first attribute access, once, then used as they are.

    The Slack Lambda acknowledges within Slack's 3 seconds and does the work in a second invocation: its
    use cases' clients (S3, DynamoDB, SQS, Auto Scaling, Lambda) are built there, not before the acknowledgement."""

    def __init__(self, factory: Callable[[], Services]) -> None:
        self._factory = factory
        self._services: Services | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._services is not None

    def get(self) -> Services:
        if self._services is None:
            with self._lock:
                if self._services is None:
                    self._services = self._factory()
        return self._services

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never build for dunder probes (copy, pickle, repr machinery)
            raise AttributeError(name)
        return getattr(self.get(), name)
