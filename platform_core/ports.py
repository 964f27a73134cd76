"""Every port of the platform, in one place: what the use cases and the trainer need from storage, the
job queue and trainer lock, events, predictions, trainers and chats. Adapters (local, AWS, in-memory fakes
in tests) live in ``platform_core.adapters``, bot/ and tests/ and pass the same contract tests."""
from __future__ import annotations

from typing import Any, Callable, Collection, Protocol

from platform_core.events import TrainingEvent
from platform_core.jobs import Job, JobState, MachineStatus, QueueDepth, ReplyTo, Ticket
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

    def upload_form(self, key: str, *, content_type: str, max_bytes: int,
                    expires_s: int) -> tuple[str, dict[str, str]] | None:
        """Where a client may POST one file of at most ``max_bytes`` straight to ``key`` for ``expires_s``
        seconds (a presigned form: the URL and the fields to send before the file), or None when this
        store has no such thing (then the caller receives the file itself)."""


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
    """Work done once per key (a webhook event id, a file id, a Telegram update id), safe across processes:
    in progress while it runs, completed for WEBHOOK_KEY_TTL_S after (platform_core.adapters.aws_idempotency)."""

    def once(self, key: str, work: Callable[[], None]) -> bool:
        """Run ``work`` unless ``key`` is completed or in progress; True when it ran here. If ``work`` raises,
        the key is freed (a retry does the work) and the error propagates; a key whose attempt died is free
        again after that attempt's deadline. Raises StorageError when the store fails."""

    def register_lambda_context(self, context: Any) -> None:
        """The Lambda invocation now running: its deadline bounds the keys it takes."""


class RateLimiter(Protocol):
    """Requests counted per key in fixed windows (the REST API's per-key limit), safe across processes."""

    def allow(self, key: str, limit: int, window_s: int, now: float) -> float:
        """0.0 when this request fits in ``key``'s current window of ``window_s`` seconds (at most ``limit``
        requests; this one is counted), else the seconds until the next window opens."""


class NotificationLog(Protocol):
    """Per training job, what the notifier sent: the progress message it edits, what was delivered,
    and any failure to deliver (recorded, never raised into the job)."""

    def get(self, job_id: str) -> dict:
        """The job's notes; an empty dict if there are none."""

    def update(self, job_id: str, **fields) -> dict:
        """Merge ``fields`` into the job's notes and return them."""

    def add(self, job_id: str, field: str, value: Any) -> bool:
        """Set ``field`` to ``value`` unless the job's notes hold it already: one conditional write, so of two
        writers racing for one field exactly one gets True (a chat joining the job's watchers)."""


class JobQueue(Protocol):
    """The jobs table: the record of every job. Every state change is a conditional write, so a job is
    claimed by one trainer at a time and finished once, however often its ticket is delivered."""

    def submit(self, job: Job) -> Job:
        """Store a new job; if ``job_id`` exists already, return the stored one unchanged (idempotent).

        A job whose enqueued_at is 0 is stamped with the store's clock (no global counter)."""

    def get(self, job_id: str) -> Job | None:
        """The job, or None (a strongly consistent read)."""

    def queued(self) -> list[Job]:
        """Queued jobs by (enqueued_at, job_id); trainers take them in platform_core.scheduling's fair order.
        On DynamoDB this reads an index and may lag a write by a moment."""

    def running(self) -> list[Job]:
        """Jobs in RUNNING state, their lease live or not (may lag like queued())."""

    def active_for(self, tenant: str, name: str) -> Job | None:
        """The queued or running job of one dataset, if any."""

    def claim(self, job_id: str, trainer: str, now: float, lease_s: float) -> bool:
        """QUEUED (or RUNNING with an expired lease: its trainer died) -> RUNNING for ``trainer`` until
        now + lease_s, counting one more attempt; False if someone else holds it or it finished. A won claim
        also records ``now`` as the tenant's last turn (``served``)."""

    def served(self, tenants: Collection[str]) -> dict[str, float]:
        """Each tenant's last claim time, for the tenants that have one (the fair order's turns)."""

    def heartbeat(self, job_id: str, trainer: str, now: float, lease_s: float) -> bool:
        """Extend ``trainer``'s lease to now + lease_s; False if the job is no longer its own."""

    def finish(self, job_id: str, state: JobState, now: float, *, error: str | None = None,
               model_version: int | None = None, trainer: str | None = None) -> bool:
        """QUEUED/RUNNING -> SUCCEEDED/FAILED; False if already finished (so callers notify once), or, when
        ``trainer`` is given, if that trainer no longer holds the job (another took it over)."""


class TrainingQueue(Protocol):
    """The training queue's messages (SQS on AWS, SQLite locally): one ticket per submitted job. Delivery is
    at least once; a ticket held past its visibility timeout is delivered again, and one delivered
    ``max_receives`` times goes to the dead-letter queue instead."""

    def send(self, job: Job, generation: int = 0) -> None:
        """One ticket for ``job`` (SQS: MessageGroupId = tenant, for SQS fair queues); ``generation`` counts how
        often the reconciler sent it again after the queue gave up on it."""

    def receive(self, wait_s: float, visibility_s: float) -> Ticket | None:
        """The next ticket, invisible to others for ``visibility_s``; None if none came within ``wait_s``."""

    def extend(self, ticket: Ticket, visibility_s: float) -> bool:
        """Keep holding the ticket for another ``visibility_s``; False if it is no longer ours."""

    def release(self, ticket: Ticket) -> None:
        """Make the ticket visible again at once (this trainer cannot take work now)."""

    def delete(self, ticket: Ticket) -> None:
        """The job it stood for is done; deleting a ticket already gone is not an error."""

    def depth(self) -> QueueDepth:
        """How many tickets wait and how many are held (approximate on SQS)."""

    def dead_letters(self, limit: int = 10) -> list[Ticket]:
        """Tickets given up on (delivered too often), held for ``remove_dead_letter``."""

    def remove_dead_letter(self, ticket: Ticket) -> None:
        """Done with a dead letter (its job was failed or sent again)."""


class MachineLock(Protocol):
    """The `MachineStatus` table: each trainer's row (Busy with the job it trains, or Free), with a lease;
    it also keeps two workers on one machine from training at once (local workers share a laptop)."""

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
    """Makes sure a trainer will take a queued job: locally a worker thread or process; on AWS the trainer
    group's desired capacity, raised to what the queue needs (platform_core.scheduling.desired_capacity)."""

    def __call__(self, job: Job) -> bool | None:
        """Ask for a trainer; True when none is ready yet (one is starting). Raises TrainerUnavailable."""


class ChatSender(Protocol):
    """One channel's outbound side (Slack Web API, Telegram Bot API, the console). ``reply`` is a
    handlers.commands.Reply (the use cases' answer type, which this layer does not import)."""

    def send(self, reply_to: ReplyTo, reply: Any) -> str | None:
        """Post the reply (text, image, buttons) where ``reply_to`` says; return a reference to edit it."""

    def edit(self, reply_to: ReplyTo, ref: str, reply: Any) -> None:
        """Replace the text of the message ``ref``."""
