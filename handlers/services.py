"""The dependencies use cases receive, built by each deployable's one wiring function."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable

from platform_core.config import Limits
from platform_core.ports import BlobStore, DatasetRepository


@dataclass
class Services:
    blobs: BlobStore
    records: DatasetRepository
    limits: Limits = field(default_factory=Limits)
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex[:12])
