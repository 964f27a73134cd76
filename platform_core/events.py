"""Training events: what the trainer tells the notifier (in process locally, over SNS on AWS; the port is
platform_core.ports.EventBus)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from platform_core.jobs import ReplyTo


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
