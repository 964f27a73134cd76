"""One contract for the training queue's tickets, run against SQS under moto (queues built from template.yaml),
SQLite and the in-memory fake: delivery, visibility, redelivery with a receive count, the dead-letter queue
after maxReceiveCount deliveries, and depth. A visibility of 0 makes a ticket visible again at once, so
redelivery is tested without waiting for a timeout."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from platform_core.jobs import Job, QueueDepth
from platform_core.ports import TrainingQueue
from tests.backends import contract_backend

HOLD = 60.0


@pytest.fixture(params=["local", "aws", "memory"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrainingQueue]:
    for backend in contract_backend(request.param, request, tmp_path):
        yield backend.queue("cpu")


def job(job_id: str, tenant: str = "slack:T1") -> Job:
    return Job(job_id=job_id, tenant=tenant, name="digits", kind="image", recipe="fast", dataset_path="d",
               dataset_version=1, requested_by="U1")


def test_an_empty_queue_delivers_nothing_and_is_empty(queue: TrainingQueue) -> None:
    assert queue.receive(0, HOLD) is None
    assert queue.depth() == QueueDepth(0, 0)
    assert queue.dead_letters() == []


def test_a_sent_ticket_is_delivered_once_with_its_job_and_tenant_while_held(queue: TrainingQueue) -> None:
    queue.send(job("j1", tenant="telegram:42"))
    ticket = queue.receive(0, HOLD)
    assert (ticket.job_id, ticket.tenant, ticket.receive_count) == ("j1", "telegram:42", 1)
    assert queue.receive(0, HOLD) is None  # invisible to everyone else while held
    assert queue.depth() == QueueDepth(waiting=0, in_flight=1)


def test_a_ticket_not_deleted_is_delivered_again_with_a_higher_count_and_a_new_receipt(queue: TrainingQueue) -> None:
    queue.send(job("j1"))
    first = queue.receive(0, 0)  # held for no time at all: as if its trainer died at once
    second = queue.receive(0, HOLD)
    assert second.job_id == "j1" and second.receive_count == 2 and second.receipt != first.receipt


def test_a_deleted_ticket_is_gone_and_deleting_it_again_is_harmless(queue: TrainingQueue) -> None:
    queue.send(job("j1"))
    ticket = queue.receive(0, 0)
    queue.delete(ticket)
    assert queue.receive(0, HOLD) is None and queue.depth() == QueueDepth(0, 0)
    queue.delete(ticket)


def test_release_makes_a_ticket_visible_at_once_and_extend_keeps_it_held(queue: TrainingQueue) -> None:
    queue.send(job("j1"))
    ticket = queue.receive(0, HOLD)
    assert queue.extend(ticket, HOLD) is True
    assert queue.receive(0, HOLD) is None
    queue.release(ticket)
    again = queue.receive(0, HOLD)
    assert again.job_id == "j1" and again.receive_count == 2


def test_tickets_come_in_the_order_sent_and_depth_counts_waiting_and_held(queue: TrainingQueue) -> None:
    for i in range(3):
        queue.send(job(f"j{i}"))
    assert queue.depth() == QueueDepth(waiting=3, in_flight=0)
    held = queue.receive(0, HOLD)
    assert queue.depth() == QueueDepth(waiting=2, in_flight=1) and queue.depth().total == 3
    assert held.job_id == "j0"


def test_a_ticket_delivered_max_receive_count_times_goes_to_the_dead_letters(queue: TrainingQueue) -> None:
    queue.send(job("poison"))
    counts = [queue.receive(0, 0).receive_count for _ in range(3)]  # the template's maxReceiveCount
    assert counts == [1, 2, 3]
    assert queue.receive(0, HOLD) is None  # moved, never delivered a fourth time
    letters = queue.dead_letters()
    assert [d.job_id for d in letters] == ["poison"] and letters[0].receive_count >= 3  # SQS counts this read too
    queue.remove_dead_letter(letters[0])
    assert queue.dead_letters() == [] and queue.depth() == QueueDepth(0, 0)


def test_extending_a_ticket_that_was_deleted_says_it_is_no_longer_held(queue: TrainingQueue) -> None:
    queue.send(job("j1"))
    ticket = queue.receive(0, HOLD)
    queue.delete(ticket)
    assert queue.extend(ticket, HOLD) is False


def test_a_redelivered_ticket_is_extended_and_deleted_with_its_new_receipt(queue: TrainingQueue) -> None:
    queue.send(job("j1"))
    queue.receive(0, 0)
    fresh = queue.receive(0, HOLD)
    assert queue.extend(fresh, HOLD) is True
    queue.delete(fresh)
    assert queue.receive(0, HOLD) is None and queue.depth() == QueueDepth(0, 0)
