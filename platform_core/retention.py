"""What is kept of a workspace that leaves, and for how long.

When a workspace uninstalls the Slack app its bot token is deleted at once (Bolt's listener), and the
workspace is marked *departed* with the time (a small blob under ``departed/``). Its datasets, models and
kept inputs stay for ``retention_s`` (30 days by default, MLBOT_DEPARTED_RETENTION_DAYS), so a reinstall in
that time finds everything as it was: installing again removes the mark. After that the reconciler deletes
every dataset, model and kept input of the workspace, and then the mark. A dataset that is still queued or
training is left for the next pass (its job ends on its own; the workspace's chat is no longer told).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from platform_core import uploads
from platform_core.apikeys import delete_keys_of
from platform_core.errors import BlobNotFound
from platform_core.ports import BlobStore, DatasetRepository
from platform_core.records import (BUSY_STATUSES, FEEDBACK_KEPT, FEEDBACK_PENDING, stored_prefixes,
                                   tenant_key)

log = logging.getLogger(__name__)
DEPARTED = "departed/"
_TENANT_PREFIXES = ("datasets", "models", FEEDBACK_PENDING, FEEDBACK_KEPT)


@dataclass(frozen=True)
class Departure:
    tenant: str
    at: float  # when it left (epoch seconds)
    why: str


def remove_dataset(records: DatasetRepository, blobs: BlobStore, tenant: str, name: str) -> int:
    """Delete one dataset: the record first (so a failure half-way leaves only unreferenced blobs, never a
    record pointing at nothing), then every blob of it; returns how many blobs went."""
    records.delete(tenant, name)
    removed = 0
    for prefix in stored_prefixes(tenant, name):
        for key in blobs.list(prefix):
            blobs.delete(key)
            removed += 1
    return removed


def depart(blobs: BlobStore, tenant: str, now: float, why: str) -> None:
    """Mark ``tenant`` as gone since ``now`` (a repeated mark keeps the first time)."""
    key = _mark(tenant)
    if not blobs.exists(key):
        blobs.put(key, json.dumps({"tenant": tenant, "at": now, "why": why}).encode(), "application/json")
        log.info("tenant %s departed (%s): its data is deleted after the retention period", tenant, why)


def come_back(blobs: BlobStore, tenant: str) -> None:
    """``tenant`` is back (installed again): nothing of it will be deleted."""
    blobs.delete(_mark(tenant))


def departures(blobs: BlobStore) -> list[Departure]:
    found = []
    for key in blobs.list(DEPARTED):
        try:
            data = json.loads(blobs.get(key))
            found.append(Departure(str(data["tenant"]), float(data["at"]), str(data.get("why", ""))))
        except BlobNotFound:  # come back meanwhile
            continue
        except (ValueError, KeyError, TypeError):
            log.error("unreadable departure mark %s: left for an operator", key)
    return found


def purge_departed(records: DatasetRepository, blobs: BlobStore, now: float, retention_s: float) -> list[str]:
    """Delete everything of each tenant departed longer than ``retention_s``; returns the tenants emptied."""
    purged = []
    for gone in departures(blobs):
        if now - gone.at < retention_s:
            continue
        kept = records.list(gone.tenant)
        busy = [r.name for r in kept if r.training_status in BUSY_STATUSES]
        for record in kept:
            if record.name not in busy:
                remove_dataset(records, blobs, gone.tenant, record.name)
        if busy:
            log.info("departed tenant %s: %d dataset(s) still training, deleted on a later pass", gone.tenant,
                     len(busy))
            continue
        for top in _TENANT_PREFIXES:  # anything left without a record (a blob a failed delete left behind)
            for key in blobs.list(f"{top}/{tenant_key(gone.tenant)}/"):
                blobs.delete(key)
        delete_keys_of(blobs, gone.tenant)
        uploads.delete_of_tenant(blobs, gone.tenant)
        blobs.delete(_mark(gone.tenant))
        log.info("departed tenant %s: every dataset, model, kept input, API key and upload deleted", gone.tenant)
        purged.append(gone.tenant)
    return purged


def _mark(tenant: str) -> str:
    return DEPARTED + tenant_key(tenant)
