"""What is kept of a workspace that uninstalled, and when it goes (platform_core.retention)."""
from __future__ import annotations

import time
from dataclasses import replace

from platform_core.config import Settings
from platform_core.records import DatasetRecord, TrainingStatus, dataset_prefix, kept_prefix, model_prefix
from platform_core.retention import DEPARTED, come_back, depart, departures, purge_departed
from tests.memory import MemoryBackend

DAY = 86400.0


def _dataset(backend: MemoryBackend, tenant: str, name: str, status: str = TrainingStatus.SUCCESSFUL.value) -> None:
    backend.records.create(DatasetRecord(tenant, name, "U1", "image", dataset_prefix(tenant, name) + "v1.zip",
                                         training_status=status))
    for key in (dataset_prefix(tenant, name) + "v1.zip", model_prefix(tenant, name) + "v1/model.onnx",
                kept_prefix(tenant, name) + "cat/p1"):
        backend.blobs.put(key, b"x")


def _keys(backend: MemoryBackend, tenant: str) -> list[str]:
    return [k for top in ("datasets", "models", "feedback", "feedback-pending")
            for k in backend.blobs.list(f"{top}/{tenant}/")]


def test_a_departed_tenant_is_kept_until_the_period_ends_then_everything_of_it_goes() -> None:
    backend = MemoryBackend()
    for tenant in ("slack:TGONE", "slack:TSTAY"):
        _dataset(backend, tenant, "pets")
    backend.blobs.put("datasets/slack:TGONE/orphan/v1.zip", b"x")  # left behind by an earlier failed delete
    depart(backend.blobs, "slack:TGONE", 1000.0, "uninstalled")
    depart(backend.blobs, "slack:TGONE", 5000.0, "uninstalled again")  # the first time counts
    assert [d.at for d in departures(backend.blobs)] == [1000.0]
    assert purge_departed(backend.records, backend.blobs, 1000.0 + 30 * DAY - 1, 30 * DAY) == []
    assert backend.records.get("slack:TGONE", "pets") is not None
    assert purge_departed(backend.records, backend.blobs, 1000.0 + 30 * DAY, 30 * DAY) == ["slack:TGONE"]
    assert backend.records.list("slack:TGONE") == [] and _keys(backend, "slack:TGONE") == []
    assert departures(backend.blobs) == [] and backend.blobs.list(DEPARTED) == []
    assert backend.records.get("slack:TSTAY", "pets") is not None and len(_keys(backend, "slack:TSTAY")) == 3


def test_a_dataset_still_training_is_left_for_a_later_pass() -> None:
    backend = MemoryBackend()
    _dataset(backend, "slack:TGONE", "done")
    _dataset(backend, "slack:TGONE", "busy", TrainingStatus.IN_PROGRESS.value)
    depart(backend.blobs, "slack:TGONE", 0.0, "uninstalled")
    assert purge_departed(backend.records, backend.blobs, 40 * DAY, 30 * DAY) == []
    assert [r.name for r in backend.records.list("slack:TGONE")] == ["busy"]
    record = backend.records.get("slack:TGONE", "busy")
    backend.records.replace(replace(record, training_status=TrainingStatus.SUCCESSFUL.value, revision=2), 1)
    assert purge_departed(backend.records, backend.blobs, 41 * DAY, 30 * DAY) == ["slack:TGONE"]
    assert backend.records.list("slack:TGONE") == [] and _keys(backend, "slack:TGONE") == []


def test_a_tenant_that_came_back_is_never_purged_and_an_unreadable_mark_is_left_alone() -> None:
    backend = MemoryBackend()
    _dataset(backend, "slack:TBACK", "pets")
    depart(backend.blobs, "slack:TBACK", 0.0, "uninstalled")
    come_back(backend.blobs, "slack:TBACK")
    backend.blobs.put(DEPARTED + "garbled", b"not json")
    assert purge_departed(backend.records, backend.blobs, 400 * DAY, 30 * DAY) == []
    assert backend.records.get("slack:TBACK", "pets") is not None
    assert backend.blobs.exists(DEPARTED + "garbled")  # an operator looks at it; nothing is guessed


def test_mlbot_serve_sweeps_departed_workspaces_in_the_background() -> None:
    from bot.console.serve import start_retention_sweeps

    backend = MemoryBackend(Settings(backend="local", departed_retention_days=1))
    _dataset(backend, "slack:TGONE", "pets")
    depart(backend.blobs, "slack:TGONE", time.time() - 2 * DAY, "uninstalled")
    stop = start_retention_sweeps(backend.settings, backend, every_s=0.05)
    try:
        deadline = time.time() + 5
        while backend.records.list("slack:TGONE") and time.time() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
    assert backend.records.list("slack:TGONE") == [] and departures(backend.blobs) == []
