"""Read-modify-write of a Dataset record under its revision, retried when another writer wins."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from platform_core.errors import ConcurrentUpdate, DatasetNotFound
from platform_core.ports import DatasetRepository
from platform_core.records import DatasetRecord, utc_now


def update_record(records: DatasetRepository, tenant: str, name: str,
                  change: Callable[[DatasetRecord], DatasetRecord], attempts: int = 5) -> DatasetRecord:
    """Apply ``change`` to the current record and write it conditionally; returns what was written."""
    for _ in range(attempts):
        current = records.get(tenant, name)
        if current is None:
            raise DatasetNotFound(name)
        updated = replace(change(current), revision=current.revision + 1, updated_at=utc_now())
        try:
            records.replace(updated, expected_revision=current.revision)
            return updated
        except ConcurrentUpdate:
            continue
    raise ConcurrentUpdate(name)
