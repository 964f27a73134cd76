"""Training jobs, where their notices go (ReplyTo), the training queue's deliveries (Ticket, QueueDepth), the
per-machine trainer record (`MachineStatus`). Their ports are in
platform_core.ports; who trains next is platform_core.scheduling."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)
# Training recipes per dataset kind; the first is the default.
RECIPES: dict[str, tuple[str, ...]] = {"image": ("fast", "seed"), "sentiment": ("e5", "encoder", "seed")}
# The trainer's HTTP route that trains each kind (the seed's names).
TRAIN_ROUTES: dict[str, str] = {"image": "/train_image_classification", "sentiment": "/train_sentiment_analysis"}


# Keys a reply_to dict had before ReplyTo (jobs and notes stored then still read back).
_LEGACY_KEYS = {"channel_id": "chat", "chat_id": "chat", "thread_ts": "thread", "message_thread_id": "thread",
                "user_id": "user", "team_id": "team", "reply_to_message_id": "answering"}


@dataclass(frozen=True)
class ReplyTo:
    """Where the replies and training notices of one request go.

    ``channel`` is "slack", "telegram" or "console"; ``chat`` the Slack channel or Telegram chat id ("" on
    the console). Two requests from one chat are one destination (``key``), whatever else they carry: a
    slash command and a button press in the same channel are told once."""

    channel: str
    chat: str = ""
    thread: str | None = None  # a Slack thread_ts or a Telegram forum topic
    user: str | None = None  # who asked (a Slack DM fallback; the console user)
    team: str | None = None  # the Slack workspace (for an org-wide Enterprise Grid install, the enterprise)
    enterprise: str | None = None  # the Enterprise Grid organisation of that workspace, if any
    answering: str | None = None  # the message this answers (Telegram's reply_to_message_id)

    @property
    def key(self) -> str:
        """The destination's stable identity: the channel and the chat."""
        return f"{self.channel}:{self.chat}"

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: Any) -> "ReplyTo | None":
        """The destination a stored or received dict names (None for an empty one); ValueError if malformed."""
        if data is None or isinstance(data, ReplyTo):
            return data
        if not isinstance(data, dict):
            raise ValueError("reply_to must be an object")
        if not data:
            return None
        fields_ = {_LEGACY_KEYS.get(k, k): v for k, v in data.items()}
        unknown = set(fields_) - set(cls.__dataclass_fields__)
        if unknown or not isinstance(fields_.get("channel"), str) or not fields_["channel"]:
            raise ValueError(f"reply_to needs a channel and knows no {', '.join(sorted(unknown)) or 'channel'}")
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in fields_.values() if v is not None):
            raise ValueError("reply_to values must be strings or numbers")
        return cls(**{k: None if v is None else str(v) for k, v in fields_.items()})


@dataclass
class Job:
    """One training request. ``job_id`` makes requests and completions idempotent."""

    job_id: str
    tenant: str
    name: str
    kind: str  # "image" | "sentiment"
    recipe: str
    dataset_path: str
    dataset_version: int
    requested_by: str
    reply_to: ReplyTo | None = None  # the chat that asked; None for an API caller nobody tells
    state: str = JobState.QUEUED.value
    enqueued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    trainer: str | None = None
    error: str | None = None
    model_version: int | None = None
    attempts: int = 0  # claims so far; a job whose trainer died is retried up to MAX_ATTEMPTS
    lease_expires_at: float = 0.0  # while running: the trainer's heartbeat keeps this in the future
    pool: str = "cpu"  # the trainers that run it (platform_core.scheduling.pool_for)

    def lease_expired(self, now: float) -> bool:
        """A running job whose trainer stopped beating: another trainer may take it over."""
        return self.state == JobState.RUNNING.value and self.lease_expires_at < now

    def __post_init__(self) -> None:
        self.reply_to = ReplyTo.from_dict(self.reply_to)  # stores and old callers hand in a dict

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reply_to": self.reply_to.as_dict() if self.reply_to else {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# A job is claimed at most this many times: a job that kills its trainer every time (out of memory) fails.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Ticket:
    """One delivery of a training-queue message (an SQS message on AWS). A ticket says "a job is waiting":
    the trainer that receives one takes the job the fair order puts first (often, not always, ``job_id``),
    keeps the ticket invisible to others while it trains, and deletes it when the job ends."""

    job_id: str
    receipt: str  # the handle to extend or delete this delivery
    receive_count: int = 1
    tenant: str = ""
    generation: int = 0  # 0 when submitted; 1 once the reconciler sent it again from the dead-letter queue


@dataclass(frozen=True)
class QueueDepth:
    """Tickets waiting to be received, and tickets held by trainers now (approximate on SQS)."""

    waiting: int
    in_flight: int

    @property
    def total(self) -> int:
        return self.waiting + self.in_flight


@dataclass
class MachineStatus:
    """One row of `MachineStatus`: a trainer machine and who holds it."""

    name: str  # the trainer's instance id
    State: str = "Free"  # "Busy" | "Free", spelled as the original table did
    owner: str | None = None  # the job it is training
    lease_expires_at: float = 0.0

    def expired(self, now: float) -> bool:
        return self.State == "Busy" and self.lease_expires_at < now
