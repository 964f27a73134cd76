"""One contract for the chat side's ports, the webhook idempotency keys and the notification log, run
against every adapter: local (SQLite under tmp_path), aws (Powertools' DynamoDB layer under moto, tables
from template.yaml) and memory (the use-case tests' fakes)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from platform_core.ports import Idempotency, NotificationLog, RateLimiter
from tests.backends import contract_backend
from tests.contract.race import race



@dataclass
class Chat:
    seen: Idempotency
    notes: NotificationLog
    limiter: RateLimiter


@pytest.fixture(params=["local", "aws", "memory"])
def chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chat]:
    for backend in contract_backend(request.param, request, tmp_path):
        yield Chat(backend.idempotency, backend.notifications, backend.rate_limiter)



# ---- Idempotency ------------------------------------------------------------------------------


class Died(BaseException):
    """An attempt that never returns: Lambda timed out or the process was killed (not an error it raised)."""


class Deadline:
    """A Lambda context: this invocation has ``ms`` left."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def get_remaining_time_in_millis(self) -> int:
        return self.ms


def test_work_runs_once_per_key_and_a_later_delivery_does_nothing(chat: Chat) -> None:
    done: list[str] = []
    assert chat.seen.once("slack:event:Ev1", lambda: done.append("first")) is True
    assert chat.seen.once("slack:event:Ev1", lambda: done.append("retry")) is False
    assert chat.seen.once("telegram:update:1", lambda: done.append("other key")) is True
    assert done == ["first", "other key"]


def test_a_delivery_while_the_first_attempt_runs_does_nothing(chat: Chat) -> None:
    started, release, done = threading.Event(), threading.Event(), []

    def slow() -> None:
        started.set()
        release.wait(10)
        done.append("first")
    first = threading.Thread(target=chat.seen.once, args=("slack:file:F1", slow))
    first.start()
    assert started.wait(10)
    assert chat.seen.once("slack:file:F1", lambda: done.append("retry")) is False
    release.set()
    first.join(10)
    assert done == ["first"]


def test_a_failed_attempt_frees_the_key_so_a_retry_does_the_work(chat: Chat) -> None:
    def fails() -> None:
        raise RuntimeError("the self-invocation was refused")
    with pytest.raises(RuntimeError):
        chat.seen.once("slack:event:Ev2", fails)
    done: list[str] = []
    assert chat.seen.once("slack:event:Ev2", lambda: done.append("retry")) is True and done == ["retry"]


def test_an_attempt_that_died_holds_the_key_only_until_its_deadline(chat: Chat) -> None:
    def dies() -> None:
        raise Died()
    chat.seen.register_lambda_context(Deadline(250))  # the invocation had 0.25 s left
    with pytest.raises(Died):
        chat.seen.once("telegram:update:7", dies)
    done: list[str] = []
    assert chat.seen.once("telegram:update:7", lambda: done.append("too early")) is False  # it may still run
    time.sleep(0.35)
    assert chat.seen.once("telegram:update:7", lambda: done.append("after the deadline")) is True
    assert done == ["after the deadline"]


def test_threads_delivering_one_key_exactly_one_does_the_work(chat: Chat) -> None:
    for round_ in range(3):
        key, done = f"slack:file:F{round_}", []
        outcomes = race(*[lambda i=i: chat.seen.once(key, lambda: done.append(i)) for i in range(8)])
        assert sorted(outcomes, key=str) == [False] * 7 + [True], outcomes
        assert len(done) == 1


def test_a_completed_key_is_taken_again_once_it_expired() -> None:
    from tests.memory import MemoryIdempotency

    seen, done = MemoryIdempotency(), []
    assert seen.once("slack:event:Ev9", lambda: done.append(1))
    (record,) = seen.layer.records.values()
    record.expiry_timestamp = int(time.time()) - 1  # a day later
    assert seen.once("slack:event:Ev9", lambda: done.append(2)) and done == [1, 2]


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


def test_add_sets_a_field_once_and_writers_racing_for_it_get_one_true(chat: Chat) -> None:
    chat.notes.update("job-1", progress_epoch=2)
    assert chat.notes.add("job-1", "watcher.slack:C1", {"channel": "slack", "chat": "C1"}) is True
    assert chat.notes.add("job-1", "watcher.slack:C1", {"channel": "slack", "chat": "C9"}) is False
    assert chat.notes.get("job-1") == {"progress_epoch": 2, "watcher.slack:C1": {"channel": "slack", "chat": "C1"}}
    same = race(*[lambda: chat.notes.add("job-2", "final", "sent") for _ in range(6)])
    assert sorted(same, key=str) == [False] * 5 + [True], same
    different = race(*[lambda i=i: chat.notes.add("job-3", f"watcher.t:{i}", {"chat": str(i)}) for i in range(6)])
    assert different == [True] * 6 and len(chat.notes.get("job-3")) == 6  # none lost to another's write


# ---- RateLimiter --------------------------------------------------------------------------------


def test_a_window_takes_its_limit_then_says_when_the_next_opens(chat: Chat) -> None:
    start = 60 * 28_333_334 + 40.0  # 40 s into a minute
    assert [chat.limiter.allow("api:k1", 3, 60, start + i) for i in range(3)] == [0.0, 0.0, 0.0]
    assert chat.limiter.allow("api:k1", 3, 60, start + 5) == pytest.approx(15.0)  # the 4th waits for the minute
    assert chat.limiter.allow("api:k2", 3, 60, start + 5) == 0.0  # another key has its own count
    assert chat.limiter.allow("api:k1", 3, 60, start + 20) == 0.0  # the next window


def test_requests_racing_for_the_last_slots_never_exceed_the_limit(chat: Chat) -> None:
    now = 1_700_000_100.0
    outcomes = race(*[lambda: chat.limiter.allow("api:race", 5, 60, now) for _ in range(8)])
    assert sorted(o == 0.0 for o in outcomes) == [False] * 3 + [True] * 5, outcomes
