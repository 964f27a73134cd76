"""Every port of the platform, in one place: what the use cases and the trainer need from storage, the
job queue and trainer lock, events, predictions, trainers and chats. Adapters (local, AWS, in-memory fakes
in tests) live in ``platform_core.adapters``, bot/ and tests/ and pass the same contract tests."""
from __future__ import annotations

from typing import Any, Protocol

from platform_core.events import TrainingEvent
from platform_core.jobs import Job, JobState, MachineStatus, ReplyTo
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


class JobQueue(Protocol):
    """The jobs table. Every state change is a conditional write."""

    def submit(self, job: Job) -> Job:
        """Store a new job; if ``job_id`` exists already, return the stored one unchanged (idempotent).

        A job whose enqueued_at is 0 is stamped by the store (in insert order where the store can)."""

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""

    def queued(self) -> list[Job]:
        """Queued jobs in queue order (enqueued_at, then job_id)."""

    def active_for(self, tenant: str, name: str) -> Job | None:
        """The queued or running job of one dataset, if any."""

    def claim(self, job_id: str, trainer: str, now: float) -> bool:
        """QUEUED -> RUNNING for ``trainer``; False if the job is no longer queued."""

    def finish(self, job_id: str, state: JobState, now: float, *, error: str | None = None,
               model_version: int | None = None) -> bool:
        """RUNNING (or QUEUED) -> SUCCEEDED/FAILED; False if already finished (so callers notify once)."""

    def running(self) -> list[Job]:
        """Jobs in RUNNING state."""


class MachineLock(Protocol):
    """The `MachineStatus` table: one training at a time per trainer machine."""

    def acquire(self, machine: str, owner: str, lease_s: float, now: float) -> bool:
        """Busy for ``owner`` if the machine is Free, absent, or its lease expired before ``now``."""

    def heartbeat(self, machine: str, owner: str, lease_s: float, now: float) -> bool:
        """Extend the lease; False if ``owner`` no longer holds the machine."""

    def release(self, machine: str, owner: str) -> bool:
        """Free the machine if ``owner`` holds it; False otherwise (never frees another's lock)."""

    def get(self, machine: str) -> MachineStatus | None:
        """The machine's row, or None."""


class EventBus(Protocol):
    def publish(self, event: TrainingEvent) -> None:
        """Deliver the event; a failure is logged by the caller and never fails a job."""


class PredictionService(Protocol):
    """What handlers.predict needs: an answer dict, or an MlbotError with the user's sentence."""

    def predict(self, tenant: str, name: str, *, image: bytes | None = None,
                text: str | None = None) -> dict[str, Any]:
        """{"label", "confidence", "top", "model_version", "dataset"}."""


class TrainerLauncher(Protocol):
    """Makes sure a trainer will run a queued job (local: in process or a child; AWS: start EC2, POST)."""

    def __call__(self, job: Job) -> None: ...


class ChatSender(Protocol):
    """One channel's outbound side (Slack Web API, Telegram Bot API, the console). ``reply`` is a
    handlers.commands.Reply (the use cases' answer type, which this layer does not import)."""

    def send(self, reply_to: ReplyTo, reply: Any) -> str | None:
        """Post the reply (text, image, buttons) where ``reply_to`` says; return a reference to edit it."""

    def edit(self, reply_to: ReplyTo, ref: str, reply: Any) -> None:
        """Replace the text of the message ``ref``."""
