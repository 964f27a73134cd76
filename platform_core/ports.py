"""Ports: what the use cases need from storage. Adapters live in ``platform_core.adapters``."""
from __future__ import annotations

from typing import Protocol

from platform_core.records import DatasetRecord


class BlobStore(Protocol):
    """Opaque bytes under string keys (S3 objects, or files under $MLBOT_HOME)."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` at ``key``, replacing any previous value. Raises StorageError."""

    def get(self, key: str) -> bytes:
        """Return the bytes at ``key``. Raises BlobNotFound if absent."""

    def exists(self, key: str) -> bool:
        """True when ``key`` holds a blob."""

    def size(self, key: str) -> int:
        """The blob's length in bytes, without reading it. Raises BlobNotFound if absent."""

    def delete(self, key: str) -> None:
        """Remove ``key`` for good, every stored version included; removing a missing key is not an error."""

    def list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix``, sorted."""


class DatasetRepository(Protocol):
    """The `Dataset` table. Every write is conditional so that racing requests cannot both win."""

    def get(self, tenant: str, name: str) -> DatasetRecord | None:
        """The record, or None."""

    def create(self, record: DatasetRecord) -> None:
        """Insert a new record. Raises DatasetExists if (tenant, name) is taken."""

    def replace(self, record: DatasetRecord, expected_revision: int) -> None:
        """Overwrite the record if its stored revision equals ``expected_revision``.

        The stored revision becomes ``record.revision``. Raises ConcurrentUpdate otherwise
        (including when the record no longer exists)."""

    def delete(self, tenant: str, name: str) -> None:
        """Remove the record; a missing one is not an error."""

    def list(self, tenant: str) -> list[DatasetRecord]:
        """The tenant's records sorted by name; never another tenant's."""


# Slack and Telegram redeliver within minutes; a delivery's key is kept for a day.
WEBHOOK_KEY_TTL_S = 24 * 3600


class Idempotency(Protocol):
    """Keys seen recently (webhook event ids, file ids, Telegram update ids), with expiry."""

    def first(self, key: str, ttl_s: float, now: float) -> bool:
        """True exactly once per key until it expires: a conditional write, safe across processes."""


class NotificationLog(Protocol):
    """Per training job, what the notifier sent: the progress message it edits, what was delivered,
    and any failure to deliver (recorded, never raised into the job)."""

    def get(self, job_id: str) -> dict:
        """The job's notes; an empty dict if there are none."""

    def update(self, job_id: str, **fields) -> dict:
        """Merge ``fields`` into the job's notes and return them."""
