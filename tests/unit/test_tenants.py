"""platform_core.tenants: a tenant linked to the one whose data it keeps (a Telegram group that became a
supergroup), on the in-memory blob store."""
from __future__ import annotations

import logging

import pytest

from platform_core.records import DatasetRecord
from platform_core.tenants import ALIASES, alias_key, link_tenant, resolve_tenant
from tests.memory import MemoryBlobStore, MemoryDatasetRepository

GROUP, SUPERGROUP = "telegram:-4001", "telegram:-1004001"


@pytest.fixture
def blobs() -> MemoryBlobStore:
    return MemoryBlobStore()


def test_a_tenant_without_a_link_answers_for_itself(blobs) -> None:
    assert resolve_tenant(blobs, SUPERGROUP) == SUPERGROUP
    assert blobs.list(ALIASES) == []


def test_a_linked_tenant_uses_the_old_tenants_data(blobs) -> None:
    assert link_tenant(blobs, SUPERGROUP, GROUP) == GROUP
    assert resolve_tenant(blobs, SUPERGROUP) == GROUP
    assert resolve_tenant(blobs, GROUP) == GROUP  # the old tenant is untouched


def test_linking_twice_is_harmless(blobs) -> None:
    link_tenant(blobs, SUPERGROUP, GROUP)
    stored = blobs.get(alias_key(SUPERGROUP))
    assert link_tenant(blobs, SUPERGROUP, GROUP) == GROUP
    assert blobs.list(ALIASES) == [alias_key(SUPERGROUP)] and blobs.get(alias_key(SUPERGROUP)) == stored


def test_a_link_once_written_is_never_replaced(blobs, caplog) -> None:
    link_tenant(blobs, SUPERGROUP, GROUP)
    with caplog.at_level(logging.ERROR, logger="platform_core.tenants"):
        assert link_tenant(blobs, SUPERGROUP, "telegram:-4002") == GROUP
    assert resolve_tenant(blobs, SUPERGROUP) == GROUP and "linked to telegram:-4001 already" in caplog.text


def test_links_never_chain(blobs) -> None:
    link_tenant(blobs, SUPERGROUP, GROUP)
    assert link_tenant(blobs, "telegram:-1007777", SUPERGROUP) == GROUP
    assert resolve_tenant(blobs, "telegram:-1007777") == GROUP


def test_a_link_that_would_make_a_loop_is_refused(blobs, caplog) -> None:
    link_tenant(blobs, SUPERGROUP, GROUP)
    with caplog.at_level(logging.ERROR, logger="platform_core.tenants"):
        assert link_tenant(blobs, GROUP, SUPERGROUP) == GROUP
    assert blobs.list(ALIASES) == [alias_key(SUPERGROUP)] and "loop" in caplog.text
    assert link_tenant(blobs, GROUP, GROUP) == GROUP and blobs.list(ALIASES) == [alias_key(SUPERGROUP)]


def test_datasets_the_new_tenant_already_had_are_kept_and_logged(blobs, caplog) -> None:
    records = MemoryDatasetRepository()
    records.create(DatasetRecord(tenant=SUPERGROUP, name="early", owner="5", kind="image",
                                 dataset_path="datasets/telegram:-1004001/early/v1/data.zip"))
    with caplog.at_level(logging.WARNING, logger="platform_core.tenants"):
        assert link_tenant(blobs, SUPERGROUP, GROUP, records=records) == GROUP
    assert "early" in caplog.text and records.get(SUPERGROUP, "early") is not None


def test_an_unreadable_link_is_logged_and_the_tenant_answers_for_itself(blobs, caplog) -> None:
    blobs.put(alias_key(SUPERGROUP), b"{not json")
    with caplog.at_level(logging.ERROR, logger="platform_core.tenants"):
        assert resolve_tenant(blobs, SUPERGROUP) == SUPERGROUP
    assert alias_key(SUPERGROUP) in caplog.text
