"""One contract for the chat side's ports, the webhook idempotency keys and the notification log, run
against every adapter: local (SQLite under tmp_path), aws (DynamoDB under moto, tables from template.yaml)
and memory (the use-case tests' fakes). Times are passed in, so expiry is tested without sleeping."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from platform_core.ports import Idempotency, NotificationLog
from tests.backends import contract_backend
from tests.contract.race import race

T0 = 1_700_000_000.0  # whole seconds: DynamoDB keeps the expiry in whole seconds (its TTL attribute)
TTL = 60.0


@dataclass
class Chat:
    seen: Idempotency
    notes: NotificationLog


@pytest.fixture(params=["local", "aws", "memory"])
def chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chat]:
    for backend in contract_backend(request.param, request, tmp_path):
        yield Chat(backend.idempotency, backend.notifications)



# ---- Idempotency ------------------------------------------------------------------------------


def test_a_key_is_first_once_until_it_expires(chat: Chat) -> None:
    assert chat.seen.first("slack:event:Ev1", TTL, T0) is True
    assert chat.seen.first("slack:event:Ev1", TTL, T0 + 1) is False
    assert chat.seen.first("slack:event:Ev1", TTL, T0 + TTL) is False  # at expiry: still seen
    assert chat.seen.first("slack:event:Ev1", TTL, T0 + TTL + 1) is True  # expired: a new delivery
    assert chat.seen.first("slack:event:Ev1", TTL, T0 + TTL + 2) is False


def test_keys_are_independent(chat: Chat) -> None:
    assert chat.seen.first("telegram:update:1", TTL, T0)
    assert chat.seen.first("telegram:update:2", TTL, T0)
    assert not chat.seen.first("telegram:update:1", TTL, T0)


def test_threads_delivering_one_key_exactly_one_is_first(chat: Chat) -> None:
    for round_ in range(3):
        key = f"slack:file:F{round_}"
        outcomes = race(*[lambda: chat.seen.first(key, TTL, T0) for _ in range(8)])
        assert sorted(outcomes, key=str) == [False] * 7 + [True], outcomes


# ---- NotificationLog ----------------------------------------------------------------------------


def test_a_job_without_notes_has_an_empty_dict(chat: Chat) -> None:
    assert chat.notes.get("job-1") == {}


def test_updates_merge_into_the_jobs_notes_and_read_back(chat: Chat) -> None:
    watchers = [{"channel": "slack", "chat": "C1"}, {"channel": "telegram", "chat": "42", "thread": "7"}]
    assert chat.notes.update("job-1", watchers=watchers) == {"watchers": watchers}
    merged = chat.notes.update("job-1", **{"progress_ref:slack:C1": "1700000000.000100", "progress_epoch": 3})
    assert merged == {"watchers": watchers, "progress_ref:slack:C1": "1700000000.000100", "progress_epoch": 3}
    assert chat.notes.get("job-1") == merged
    assert chat.notes.update("job-1", progress_epoch=4)["progress_epoch"] == 4
    assert chat.notes.get("job-2") == {}  # another job's notes are its own
