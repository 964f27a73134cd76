"""The one place that turns settings into the platform's adapters, for every deployable's wiring.

Local: files and SQLite under $MLBOT_HOME, events delivered in process. AWS: S3, DynamoDB, SQS and SNS, with one
boto3 client per service shared by every adapter of the process (a chat Lambda builds one DynamoDB client,
not one per table). Adapters are built on first use and then kept, so a Lambda's acknowledgement path builds
only what it touches. SDKs are imported by the adapters, and only when the AWS backend is chosen.
"""
from __future__ import annotations

import threading
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import Any, Callable, TypeVar

from platform_core.config import Settings
from platform_core.errors import ConfigError, TrainerUnavailable
from platform_core.ports import (BlobStore, DatasetRepository, EventBus, Idempotency, JobQueue, MachineLock,
                                 NotificationLog, RateLimiter, TrainingQueue)

T = TypeVar("T")


class Backend:
    """The adapters of one process, each built once on first use (thread-safe)."""

    name = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()

    def client(self, service: str) -> Any:
        """An AWS SDK client; only the AWS backend has them."""
        raise ConfigError("MLBOT_BACKEND", f"must be 'aws' to reach the {service} service")

    def _once(self, key: str, build: Callable[[], T]) -> T:
        if key not in self._built:
            with self._lock:
                if key not in self._built:
                    self._built[key] = build()
        return self._built[key]

    @property
    def blobs(self) -> BlobStore:
        return self._once("blobs", self._blobs)

    @property
    def records(self) -> DatasetRepository:
        return self._once("records", self._records)

    @property
    def jobs(self) -> JobQueue:
        return self._once("jobs", self._jobs)

    @property
    def pools(self) -> tuple[str, ...]:
        """The trainer pools this deployment has ("cpu", and "gpu" where configured)."""
        return ("cpu",)

    def queue(self, pool: str = "cpu") -> TrainingQueue:
        """The training queue of one pool of trainers (ConfigError for a pool this deployment lacks)."""
        if pool not in self.pools:
            raise ConfigError("MLBOT_QUEUE_URL" if pool == "cpu" else "MLBOT_GPU_QUEUE_URL",
                              f"no training queue for the {pool} pool")
        return self._once(f"queue:{pool}", lambda: self._queue(pool))

    @property
    def queues(self) -> Mapping[str, TrainingQueue]:
        """Every pool's training queue, built on first use of each."""
        return _LazyQueues(self)

    @property
    def lock(self) -> MachineLock:
        return self._once("lock", self._machine_lock)

    @property
    def events(self) -> EventBus:
        return self._once("events", self._events)

    @property
    def idempotency(self) -> Idempotency:
        return self._once("idempotency", self._idempotency)

    @property
    def rate_limiter(self) -> RateLimiter:
        return self._once("rate_limiter", self._rate_limiter)

    @property
    def notifications(self) -> NotificationLog:
        return self._once("notifications", self._notifications)

    def _blobs(self) -> BlobStore: raise NotImplementedError
    def _records(self) -> DatasetRepository: raise NotImplementedError
    def _jobs(self) -> JobQueue: raise NotImplementedError
    def _queue(self, pool: str) -> TrainingQueue: raise NotImplementedError
    def _machine_lock(self) -> MachineLock: raise NotImplementedError
    def _events(self) -> EventBus: raise NotImplementedError
    def _idempotency(self) -> Idempotency: raise NotImplementedError
    def _notifications(self) -> NotificationLog: raise NotImplementedError
    def _rate_limiter(self) -> RateLimiter: raise NotImplementedError


class LocalBackend(Backend):
    """Files and SQLite under settings.home; events to in-process subscribers."""

    name = "local"

    def _file(self, name: str) -> Path:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        return self.settings.home / name

    def _blobs(self) -> BlobStore:
        from platform_core.adapters.local import LocalBlobStore

        return LocalBlobStore(self._file("blobs"))

    def _records(self) -> DatasetRepository:
        from platform_core.adapters.local import SqliteDatasetRepository

        return SqliteDatasetRepository(self._file("mlbot.sqlite3"))

    def _jobs(self) -> JobQueue:
        from platform_core.adapters.local_jobs import SqliteJobQueue

        return SqliteJobQueue(self._file("jobs.sqlite3"))

    def _queue(self, pool: str) -> TrainingQueue:
        from platform_core.adapters.local_queue import SqliteTrainingQueue

        return SqliteTrainingQueue(self._file("jobs.sqlite3"), queue=pool)

    def _machine_lock(self) -> MachineLock:
        from platform_core.adapters.local_jobs import SqliteMachineLock

        return SqliteMachineLock(self._file("jobs.sqlite3"))

    def _events(self) -> EventBus:
        from platform_core.adapters.local_events import LocalEventBus

        return LocalEventBus()

    def _idempotency(self) -> Idempotency:
        from platform_core.adapters.aws_idempotency import PowertoolsIdempotency, SqlitePersistenceLayer

        return PowertoolsIdempotency(SqlitePersistenceLayer(self._file("chat.sqlite3")))

    def _rate_limiter(self) -> RateLimiter:
        from platform_core.adapters.local_chat import SqliteRateLimiter

        return SqliteRateLimiter(self._file("chat.sqlite3"))

    def _notifications(self) -> NotificationLog:
        from platform_core.adapters.local_chat import SqliteNotificationLog

        return SqliteNotificationLog(self._file("jobs.sqlite3"))  # beside the jobs it is about


class AwsBackend(Backend):
    """S3, DynamoDB and SNS named by settings; one client per AWS service for the whole process."""

    name = "aws"

    def client(self, service: str) -> Any:
        """The process's boto3 client for ``service`` (settings' region and endpoint)."""
        from platform_core.adapters.aws import make_boto3_client

        return self._once(f"client:{service}", lambda: make_boto3_client(service, self.settings))

    def _blobs(self) -> BlobStore:
        from platform_core.adapters.aws import S3BlobStore

        return S3BlobStore(bucket=self.settings.bucket, client=self.client("s3"))

    def _records(self) -> DatasetRepository:
        from platform_core.adapters.aws import DynamoDatasetRepository

        return DynamoDatasetRepository(table_name=self.settings.dataset_table, client=self.client("dynamodb"))

    def _jobs(self) -> JobQueue:
        from platform_core.adapters.aws_jobs import DynamoJobQueue

        return DynamoJobQueue(table_name=self.settings.job_table, client=self.client("dynamodb"))

    @property
    def pools(self) -> tuple[str, ...]:
        return tuple(self.settings.queue_urls) or ("cpu",)

    def _queue(self, pool: str) -> TrainingQueue:
        from platform_core.adapters.aws_queue import SqsTrainingQueue

        url = self.settings.queue_urls.get(pool)
        if not url:
            raise ConfigError("MLBOT_QUEUE_URL" if pool == "cpu" else "MLBOT_GPU_QUEUE_URL")
        return SqsTrainingQueue(queue_url=url, dead_letter_url=self.settings.dead_letter_url,
                                client=self.client("sqs"))

    def scaler(self, pool: str = "cpu") -> Any:
        """The scale-out of one pool's trainer group (aws_fleet.AutoScalingLauncher), built once; the submit
        path and the reconciler share it. TrainerUnavailable for a pool without a group."""
        group = self.settings.trainer_groups.get(pool)
        if group is None or pool not in self.pools:
            raise TrainerUnavailable(f"no trainer group for the {pool} pool")

        def build() -> Any:
            from platform_core.adapters.aws_fleet import AutoScalingLauncher

            return AutoScalingLauncher(group=group, queue=self.queue(pool), client=self.client("autoscaling"))
        return self._once(f"scaler:{pool}", build)

    def _machine_lock(self) -> MachineLock:
        from platform_core.adapters.aws_machines import DynamoMachineLock

        return DynamoMachineLock(table_name=self.settings.machine_table, client=self.client("dynamodb"))

    def _events(self) -> EventBus:
        from platform_core.adapters.aws_events import SnsEventBus

        return SnsEventBus(topic_arn=self.settings.topic_arn, client=self.client("sns"))

    def _idempotency(self) -> Idempotency:
        from platform_core.adapters.aws_idempotency import dynamodb_idempotency

        return dynamodb_idempotency(self.settings.idempotency_table, self.client("dynamodb"))

    def _rate_limiter(self) -> RateLimiter:
        from platform_core.adapters.aws_chat import DynamoRateLimiter

        return DynamoRateLimiter(table_name=self.settings.idempotency_table, client=self.client("dynamodb"))

    def _notifications(self) -> NotificationLog:
        from platform_core.adapters.aws_chat import DynamoNotificationLog

        return DynamoNotificationLog(table_name=self.settings.job_table, client=self.client("dynamodb"))


class _LazyQueues(Mapping):
    """pool -> TrainingQueue, each built when first looked up (a chat Lambda that only answers builds none)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def __getitem__(self, pool: str) -> TrainingQueue:
        if pool not in self._backend.pools:
            raise KeyError(pool)
        return self._backend.queue(pool)

    def __iter__(self) -> Iterator[str]:
        return iter(self._backend.pools)

    def __len__(self) -> int:
        return len(self._backend.pools)


def backend_for(settings: Settings) -> Backend:
    """The backend settings name (MLBOT_BACKEND): the only test of it outside configuration."""
    return AwsBackend(settings) if settings.backend == "aws" else LocalBackend(settings)
