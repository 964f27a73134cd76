"""Training events and the port they travel through (in process locally, SNS on AWS)."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

from platform_core.jobs import ReplyTo

log = logging.getLogger(__name__)

PROGRESS = "TrainingProgress"
FINISHED = "TrainingFinished"
FAILED = "TrainingFailed"


@dataclass(frozen=True)
class TrainingEvent:
    """What the notifier needs to tell the chat that asked; no credentials, no file URLs."""

    type: str
    job_id: str
    tenant: str
    name: str
    reply_to: ReplyTo | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reply_to", ReplyTo.from_dict(self.reply_to))

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "reply_to": self.reply_to.as_dict() if self.reply_to else {}},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainingEvent":
        data = json.loads(text)
        return cls(**{k: data[k] for k in ("type", "job_id", "tenant", "name", "reply_to", "payload") if k in data})


class EventBus(Protocol):
    def publish(self, event: TrainingEvent) -> None:
        """Deliver the event; a failure is logged by the caller and never fails a job."""


class LocalEventBus:
    """In-process delivery to subscribers; one failing subscriber never stops the others."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[TrainingEvent], None]] = []

    def subscribe(self, handler: Callable[[TrainingEvent], None]) -> None:
        """Call ``handler`` for every event published from now on."""
        self._subscribers.append(handler)

    def publish(self, event: TrainingEvent) -> None:
        """Hand the event to each subscriber in turn."""
        for handler in list(self._subscribers):
            try:
                handler(event)
            except Exception:  # a notification failure never fails the job
                log.exception("event subscriber failed for %s %s", event.type, event.job_id)
