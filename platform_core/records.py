"""The `Dataset` record (one item of the Dataset table) and the rules for names and keys."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from platform_core.errors import InvalidDatasetName

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_TENANT_SAFE = re.compile(r"[^A-Za-z0-9._:@-]")


class TrainingStatus(str, Enum):
    NOT_STARTED = "Training Not Started"
    QUEUED = "Training Queued"
    IN_PROGRESS = "Training In Progress"
    SUCCESSFUL = "Training Successful"
    FAILED = "Training Failed"


BUSY_STATUSES = (TrainingStatus.QUEUED.value, TrainingStatus.IN_PROGRESS.value)


def normalise_name(raw: str) -> str:
    """Dataset names are case-insensitive: 'Digits' and 'digits' are one dataset."""
    name = (raw or "").strip()
    if not _NAME.match(name):
        raise InvalidDatasetName(name[:60])
    return name.lower()


def tenant_key(tenant: str) -> str:
    """A tenant id made safe for a storage key (ids are ours, but never trust them blindly)."""
    return _TENANT_SAFE.sub("_", tenant)


def dataset_prefix(tenant: str, name: str) -> str:
    return f"datasets/{tenant_key(tenant)}/{name}/"


def model_prefix(tenant: str, name: str) -> str:
    return f"models/{tenant_key(tenant)}/{name}/"


FEEDBACK_PENDING = "feedback-pending"  # every predicted input, for a week (the bucket expires them)
FEEDBACK_KEPT = "feedback"  # the inputs filed as examples of a class, until retrain or forget


def pending_prefix(tenant: str, name: str) -> str:
    return f"{FEEDBACK_PENDING}/{tenant_key(tenant)}/{name}/"


def kept_prefix(tenant: str, name: str) -> str:
    return f"{FEEDBACK_KEPT}/{tenant_key(tenant)}/{name}/"


def stored_prefixes(tenant: str, name: str) -> tuple[str, ...]:
    """Every blob prefix that holds something of one dataset: its uploads, its models, its kept inputs."""
    return (dataset_prefix(tenant, name), model_prefix(tenant, name), pending_prefix(tenant, name),
            kept_prefix(tenant, name))


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class DatasetRecord:
    """One row of the `Dataset` table, addressed by (tenant, name)."""

    tenant: str
    name: str
    owner: str
    kind: str
    dataset_path: str
    description: str = ""
    class_counts: dict[str, int] = field(default_factory=dict)
    dataset_version: int = 1
    training_status: str = TrainingStatus.NOT_STARTED.value
    model_path: str | None = None
    vocab_path: str | None = None
    model_version: int | None = None
    training_accuracy: float | None = None
    validation_accuracy: float | None = None
    size_bytes: int = 0
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    # Why the last training failed, in plain words (the last good model stays current).
    training_error: str | None = None
    last_job_id: str | None = None
    # Optimistic-concurrency counter: every conditional write expects the revision it read.
    revision: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
