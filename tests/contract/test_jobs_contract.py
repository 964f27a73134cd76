"""One contract for the job queue and the trainer lock, run against every adapter.

local: one SQLite file under tmp_path; aws: DynamoDB under moto, tables built from template.yaml;
memory: the use-case tests' fakes (tests/memory.py). Times are passed in, so leases and queue order are
tested without sleeping.
"""
from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import pytest
from moto import mock_aws

from platform_core.adapters.aws import make_boto3_client
from platform_core.adapters.aws_jobs import DynamoJobQueue
from platform_core.adapters.aws_machines import DynamoMachineLock
from platform_core.adapters.local_jobs import SqliteJobQueue, SqliteMachineLock
from platform_core.config import Settings
from platform_core.errors import StorageError
from platform_core.jobs import ReplyTo, Job, JobState, MachineStatus
from platform_core.ports import JobQueue, MachineLock
from tests import infra
from tests.contract.race import race
from tests.backends import contract_backend

T0 = 1_700_000_000.25  # a realistic epoch time with a fraction, so floats must round-trip
LEASE = 60.0


@dataclass
class Training:
    jobs: JobQueue
    lock: MachineLock


@pytest.fixture(params=["local", "aws", "memory"])
def training(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Training]:
    for backend in contract_backend(request.param, request, tmp_path):
        yield Training(backend.jobs, backend.lock)

def make_job(job_id: str = "job-1", **changes: Any) -> Job:
    base = Job(
        job_id=job_id, tenant="slack:T001", name="digits", kind="image", recipe="fast",
        dataset_path="datasets/slack:T001/digits/v1.zip", dataset_version=1, requested_by="U123",
        reply_to=ReplyTo("slack", "C42", thread="1714550400.000100", user="U123", team="T001"),
        enqueued_at=T0,
    )
    return replace(base, **changes)




# ---- JobQueue: submit and get ----------------------------------------------------------------


def test_a_submitted_job_reads_back_equal_with_floats_nones_and_its_destination(
    training: Training,
) -> None:
    job = make_job()
    assert training.jobs.submit(job) == job
    stored = training.jobs.get("job-1")
    assert stored == job
    assert type(stored.enqueued_at) is float and type(stored.dataset_version) is int
    assert stored.started_at is None and stored.trainer is None and stored.model_version is None


def test_a_whole_second_enqueue_time_still_reads_back_as_a_float(training: Training) -> None:
    training.jobs.submit(make_job(enqueued_at=1_700_000_000.0, reply_to=None))
    stored = training.jobs.get("job-1")
    assert stored.enqueued_at == 1_700_000_000.0 and type(stored.enqueued_at) is float
    assert stored.reply_to is None  # an API caller's job tells nobody


def test_getting_a_missing_job_returns_none(training: Training) -> None:
    assert training.jobs.get("nope") is None


def test_submitting_a_known_job_id_returns_the_stored_job_unchanged(training: Training) -> None:
    first = make_job(recipe="fast")
    training.jobs.submit(first)
    again = training.jobs.submit(make_job(recipe="seed", requested_by="U999", enqueued_at=T0 + 5))
    assert again == first
    assert training.jobs.get("job-1") == first
    assert training.jobs.queued() == [first]


def test_resubmitting_a_claimed_job_neither_requeues_nor_resets_it(training: Training) -> None:
    training.jobs.submit(make_job())
    assert training.jobs.claim("job-1", "i-0abc", T0 + 1, LEASE)
    again = training.jobs.submit(make_job())
    assert again.state == JobState.RUNNING.value and again.trainer == "i-0abc"
    assert training.jobs.queued() == []


def test_threads_submitting_one_job_id_store_it_once_and_all_see_the_same_job(
    training: Training,
) -> None:
    variants = [make_job(requested_by=f"U{i}") for i in range(6)]
    outcomes = race(*[lambda v=v: training.jobs.submit(v) for v in variants])
    stored = training.jobs.get("job-1")
    assert stored in variants
    assert outcomes == [stored] * len(variants)
    assert len(training.jobs.queued()) == 1


# ---- JobQueue: queue order, running, active_for ----------------------------------------------


def test_the_store_stamps_unstamped_jobs_in_the_order_it_stores_them(training: Training) -> None:
    before = time.time()
    stored = race(*[lambda i=i: training.jobs.submit(make_job(f"race-{i}", enqueued_at=0.0)) for i in range(8)])
    assert all(isinstance(j, Job) for j in stored), stored
    stamps = [j.enqueued_at for j in stored]
    assert len(set(stamps)) == 8 and min(stamps) >= before - 1  # distinct, real times
    queue = training.jobs.queued()
    assert [j.job_id for j in queue] == [j.job_id for j in sorted(stored, key=lambda j: j.enqueued_at)]
    again = training.jobs.submit(make_job("race-0", enqueued_at=0.0, requested_by="someone else"))
    assert again == training.jobs.get("race-0")  # idempotent: the stored job, unchanged


def test_queued_lists_jobs_by_enqueue_time_then_job_id(training: Training) -> None:
    for job_id, at in (("c", T0 + 2), ("b", T0 + 1), ("a2", T0 + 1), ("a1", T0 + 1), ("z", T0)):
        training.jobs.submit(make_job(job_id, enqueued_at=at))
    assert [j.job_id for j in training.jobs.queued()] == ["z", "a1", "a2", "b", "c"]


def test_queued_leaves_out_running_and_finished_jobs(training: Training) -> None:
    for i in range(4):
        training.jobs.submit(make_job(f"j{i}", enqueued_at=T0 + i))
    training.jobs.claim("j0", "i-1", T0 + 10, LEASE)
    training.jobs.finish("j1", JobState.FAILED, T0 + 10, error="bad data")
    training.jobs.claim("j2", "i-1", T0 + 11, LEASE)
    training.jobs.finish("j2", JobState.SUCCEEDED, T0 + 12, model_version=1)
    assert [j.job_id for j in training.jobs.queued()] == ["j3"]
    assert [j.job_id for j in training.jobs.running()] == ["j0"]


def test_queued_and_running_are_empty_on_a_new_store(training: Training) -> None:
    assert training.jobs.queued() == [] and training.jobs.running() == []


def test_queued_returns_every_job_even_past_one_result_page(training: Training) -> None:
    # Three items of ~380 KB exceed DynamoDB's 1 MB query page.
    jobs = [make_job(f"big-{i}", enqueued_at=T0 + i, reply_to=ReplyTo("slack", str(i) * 380_000))
            for i in range(3)]
    for job in jobs:
        training.jobs.submit(job)
    assert training.jobs.queued() == jobs


def test_active_for_finds_the_datasets_queued_or_running_job_only(training: Training) -> None:
    assert training.jobs.active_for("slack:T001", "digits") is None
    training.jobs.submit(make_job("old", enqueued_at=T0))
    training.jobs.finish("old", JobState.FAILED, T0 + 1, error="oom")
    assert training.jobs.active_for("slack:T001", "digits") is None
    training.jobs.submit(make_job("new", enqueued_at=T0 + 2))
    assert training.jobs.active_for("slack:T001", "digits") == training.jobs.get("new")
    training.jobs.claim("new", "i-1", T0 + 3, LEASE)
    assert training.jobs.active_for("slack:T001", "digits").state == JobState.RUNNING.value
    training.jobs.finish("new", JobState.SUCCEEDED, T0 + 4, model_version=2)
    assert training.jobs.active_for("slack:T001", "digits") is None


def test_active_for_prefers_the_running_job_over_a_queued_one(training: Training) -> None:
    training.jobs.submit(make_job("first", enqueued_at=T0))
    training.jobs.submit(make_job("second", enqueued_at=T0 + 1))
    assert training.jobs.active_for("slack:T001", "digits").job_id == "first"
    training.jobs.claim("second", "i-1", T0 + 2, LEASE)
    assert training.jobs.active_for("slack:T001", "digits").job_id == "second"


def test_active_for_never_returns_another_tenants_or_another_datasets_job(
    training: Training,
) -> None:
    training.jobs.submit(make_job("theirs", tenant="telegram:-100200"))
    training.jobs.submit(make_job("other-name", name="digits2"))
    training.jobs.submit(make_job("prefix", tenant="slack:T0011"))
    assert training.jobs.active_for("slack:T001", "digits") is None
    assert training.jobs.active_for("telegram:-100200", "digits").job_id == "theirs"
    assert training.jobs.active_for("slack:T001", "digits2").job_id == "other-name"


# ---- JobQueue: claim and finish ---------------------------------------------------------------


def test_claim_moves_a_queued_job_to_running_for_the_trainer(training: Training) -> None:
    training.jobs.submit(make_job())
    assert training.jobs.claim("job-1", "i-0abc", T0 + 1.5, LEASE) is True
    stored = training.jobs.get("job-1")
    assert stored == replace(make_job(), state="running", trainer="i-0abc", started_at=T0 + 1.5, attempts=1,
                             lease_expires_at=T0 + 1.5 + LEASE)
    assert training.jobs.running() == [stored]


def test_a_running_job_whose_lease_expired_is_taken_over_with_one_more_attempt(training: Training) -> None:
    training.jobs.submit(make_job())
    assert training.jobs.claim("job-1", "i-dead", T0, LEASE)
    assert training.jobs.claim("job-1", "i-next", T0 + LEASE - 1, LEASE) is False  # still alive
    assert training.jobs.claim("job-1", "i-next", T0 + LEASE + 1, LEASE) is True
    stored = training.jobs.get("job-1")
    assert (stored.trainer, stored.attempts, stored.lease_expires_at) == ("i-next", 2, T0 + 2 * LEASE + 1)
    assert stored.lease_expired(T0 + 2 * LEASE + 2) and not stored.lease_expired(T0 + 2 * LEASE)


def test_heartbeat_extends_only_the_holders_lease(training: Training) -> None:
    training.jobs.submit(make_job())
    assert training.jobs.heartbeat("job-1", "i-1", T0, LEASE) is False  # not running yet
    training.jobs.claim("job-1", "i-1", T0, LEASE)
    assert training.jobs.heartbeat("job-1", "i-1", T0 + 50, LEASE) is True
    assert training.jobs.get("job-1").lease_expires_at == T0 + 50 + LEASE
    assert training.jobs.heartbeat("job-1", "i-2", T0 + 51, LEASE) is False
    assert training.jobs.claim("job-1", "i-2", T0 + 50 + LEASE - 1, LEASE) is False  # the beat kept it


def test_finish_by_a_trainer_that_lost_the_job_is_refused(training: Training) -> None:
    training.jobs.submit(make_job())
    training.jobs.claim("job-1", "i-old", T0, LEASE)
    training.jobs.claim("job-1", "i-new", T0 + LEASE + 1, LEASE)
    assert training.jobs.finish("job-1", JobState.SUCCEEDED, T0 + 100, model_version=1, trainer="i-old") is False
    assert training.jobs.heartbeat("job-1", "i-old", T0 + 100, LEASE) is False
    assert training.jobs.finish("job-1", JobState.SUCCEEDED, T0 + 101, model_version=1, trainer="i-new") is True
    assert training.jobs.get("job-1").state == "succeeded" and training.jobs.running() == []


def test_claim_is_refused_for_a_running_finished_or_missing_job(training: Training) -> None:
    training.jobs.submit(make_job("a"))
    training.jobs.submit(make_job("b"))
    assert training.jobs.claim("a", "i-1", T0 + 1, LEASE)
    assert training.jobs.claim("a", "i-2", T0 + 2, LEASE) is False
    assert training.jobs.get("a").trainer == "i-1" and training.jobs.get("a").started_at == T0 + 1
    training.jobs.finish("b", JobState.FAILED, T0 + 1, error="cancelled")
    assert training.jobs.claim("b", "i-1", T0 + 2, LEASE) is False
    assert training.jobs.get("b").state == JobState.FAILED.value
    assert training.jobs.claim("missing", "i-1", T0, LEASE) is False
    assert training.jobs.get("missing") is None


def test_threads_racing_to_claim_one_job_exactly_one_wins(training: Training) -> None:
    for round_ in range(4):
        job_id = f"race-{round_}"
        training.jobs.submit(make_job(job_id))
        trainers = [f"i-{n}" for n in range(8)]
        outcomes = race(*[lambda t=t: training.jobs.claim(job_id, t, T0 + 1, LEASE) for t in trainers])
        assert sorted(outcomes, key=str) == [False] * 7 + [True], outcomes
        assert training.jobs.get(job_id).trainer == trainers[outcomes.index(True)]


def test_finish_records_the_outcome_and_succeeds_only_once(training: Training) -> None:
    training.jobs.submit(make_job())
    training.jobs.claim("job-1", "i-1", T0 + 1, LEASE)
    assert training.jobs.finish("job-1", JobState.SUCCEEDED, T0 + 9.5, model_version=3) is True
    done = training.jobs.get("job-1")
    assert (done.state, done.finished_at, done.model_version, done.error) == (
        "succeeded", T0 + 9.5, 3, None)
    assert training.jobs.finish("job-1", JobState.FAILED, T0 + 10, error="late") is False
    assert training.jobs.get("job-1") == done
    assert training.jobs.running() == []
    assert training.jobs.active_for("slack:T001", "digits") is None


def test_finish_can_fail_a_job_that_never_started(training: Training) -> None:
    training.jobs.submit(make_job())
    assert training.jobs.finish("job-1", JobState.FAILED, T0 + 1, error="trainer died")
    failed = training.jobs.get("job-1")
    assert (failed.state, failed.error, failed.trainer) == ("failed", "trainer died", None)


def test_finish_of_a_missing_job_is_false_and_creates_nothing(training: Training) -> None:
    assert training.jobs.finish("ghost", JobState.FAILED, T0, error="x") is False
    assert training.jobs.get("ghost") is None


def test_finish_refuses_a_state_that_is_not_final(training: Training) -> None:
    training.jobs.submit(make_job())
    for state in (JobState.QUEUED, JobState.RUNNING):
        with pytest.raises(ValueError):
            training.jobs.finish("job-1", state, T0 + 1)
    assert training.jobs.get("job-1") == make_job()


def test_threads_racing_to_finish_one_job_exactly_one_wins(training: Training) -> None:
    training.jobs.submit(make_job())
    training.jobs.claim("job-1", "i-1", T0 + 1, LEASE)
    outcomes = race(*[
        lambda i=i: training.jobs.finish("job-1", JobState.FAILED, T0 + 2, error=f"e{i}")
        for i in range(8)
    ])
    assert sorted(outcomes, key=str) == [False] * 7 + [True], outcomes
    assert training.jobs.get("job-1").error == f"e{outcomes.index(True)}"


# ---- MachineLock ------------------------------------------------------------------------------


def test_acquire_takes_an_absent_machine_and_records_owner_and_lease(training: Training) -> None:
    assert training.lock.get("i-0abc") is None
    assert training.lock.acquire("i-0abc", "job-1", LEASE, T0) is True
    assert training.lock.get("i-0abc") == MachineStatus("i-0abc", "Busy", "job-1", T0 + LEASE)


def test_acquire_takes_a_machine_that_was_released(training: Training) -> None:
    training.lock.acquire("i-0abc", "job-1", LEASE, T0)
    assert training.lock.release("i-0abc", "job-1") is True
    assert training.lock.get("i-0abc") == MachineStatus("i-0abc", "Free", None, 0.0)
    assert training.lock.acquire("i-0abc", "job-2", LEASE, T0 + 1) is True
    assert training.lock.get("i-0abc").owner == "job-2"


def test_acquire_is_refused_while_another_holds_an_unexpired_lease(training: Training) -> None:
    training.lock.acquire("i-0abc", "job-1", LEASE, T0)
    assert training.lock.acquire("i-0abc", "job-2", LEASE, T0 + 1) is False
    assert training.lock.acquire("i-0abc", "job-2", LEASE, T0 + LEASE) is False  # at expiry: held
    assert training.lock.get("i-0abc") == MachineStatus("i-0abc", "Busy", "job-1", T0 + LEASE)


def test_acquire_takes_over_once_the_lease_has_expired(training: Training) -> None:
    training.lock.acquire("i-0abc", "job-1", LEASE, T0)
    later = T0 + LEASE + 0.5
    assert training.lock.acquire("i-0abc", "job-2", LEASE, later) is True
    assert training.lock.get("i-0abc") == MachineStatus("i-0abc", "Busy", "job-2", later + LEASE)
    assert training.lock.heartbeat("i-0abc", "job-1", LEASE, later + 1) is False
    assert training.lock.release("i-0abc", "job-1") is False
    assert training.lock.get("i-0abc").owner == "job-2"


def test_machines_are_locked_independently(training: Training) -> None:
    assert training.lock.acquire("i-1", "job-1", LEASE, T0)
    assert training.lock.acquire("i-2", "job-2", LEASE, T0)
    assert training.lock.release("i-1", "job-1")
    assert training.lock.get("i-2").State == "Busy"


def test_heartbeat_extends_the_lease_only_for_the_owner(training: Training) -> None:
    training.lock.acquire("i-0abc", "job-1", LEASE, T0)
    assert training.lock.heartbeat("i-0abc", "job-2", LEASE, T0 + 30) is False
    assert training.lock.get("i-0abc").lease_expires_at == T0 + LEASE
    assert training.lock.heartbeat("i-0abc", "job-1", LEASE, T0 + 30) is True
    assert training.lock.get("i-0abc") == MachineStatus("i-0abc", "Busy", "job-1", T0 + 30 + LEASE)
    # the extended lease now holds off a taker that would have won under the first lease
    assert training.lock.acquire("i-0abc", "job-2", LEASE, T0 + LEASE + 1) is False


def test_heartbeat_fails_once_the_lease_has_expired_or_the_machine_is_free(
    training: Training,
) -> None:
    assert training.lock.heartbeat("i-0abc", "job-1", LEASE, T0) is False
    assert training.lock.get("i-0abc") is None
    training.lock.acquire("i-0abc", "job-1", LEASE, T0)
    assert training.lock.heartbeat("i-0abc", "job-1", LEASE, T0 + LEASE + 1) is False
    training.lock.acquire("i-0abc", "job-1", LEASE, T0 + LEASE + 2)  # expired: taken again
    training.lock.release("i-0abc", "job-1")
    assert training.lock.heartbeat("i-0abc", "job-1", LEASE, T0 + LEASE + 3) is False
    assert training.lock.get("i-0abc").State == "Free"


def test_release_frees_only_the_owners_lock(training: Training) -> None:
    training.lock.acquire("i-0abc", "job-1", LEASE, T0)
    assert training.lock.release("i-0abc", "job-2") is False
    assert training.lock.get("i-0abc") == MachineStatus("i-0abc", "Busy", "job-1", T0 + LEASE)
    assert training.lock.release("i-0abc", "job-1") is True
    assert training.lock.release("i-0abc", "job-1") is False
    assert training.lock.get("i-0abc").State == "Free"


def test_release_of_an_absent_machine_is_false_and_creates_nothing(training: Training) -> None:
    assert training.lock.release("i-0abc", "job-1") is False
    assert training.lock.get("i-0abc") is None


def test_eight_threads_racing_to_acquire_exactly_one_wins(training: Training) -> None:
    for round_ in range(4):
        machine = f"i-race-{round_}"
        owners = [f"job-{n}" for n in range(8)]
        outcomes = race(*[lambda o=o: training.lock.acquire(machine, o, LEASE, T0)
                           for o in owners])
        assert sorted(outcomes, key=str) == [False] * 7 + [True], outcomes
        assert training.lock.get(machine).owner == owners[outcomes.index(True)]


def test_eight_threads_racing_for_an_expired_lease_exactly_one_wins(training: Training) -> None:
    training.lock.acquire("i-0abc", "crashed", LEASE, T0)
    later = T0 + LEASE + 1
    owners = [f"job-{n}" for n in range(8)]
    outcomes = race(*[lambda o=o: training.lock.acquire("i-0abc", o, LEASE, later)
                       for o in owners])
    assert sorted(outcomes, key=str) == [False] * 7 + [True], outcomes
    assert training.lock.get("i-0abc").owner == owners[outcomes.index(True)]


# ---- adapter-specific promises behind the contract --------------------------------------------


def _acquire_machines(path: str, owner: str, count: int, start: Any, results: Any) -> None:
    lock = SqliteMachineLock(Path(path))
    start.wait()
    results.put([i for i in range(count) if lock.acquire(f"m{i}", owner, LEASE, T0)])


@pytest.mark.slow  # two spawned processes
def test_two_processes_opening_one_new_sqlite_file_each_machine_is_acquired_once(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    path = str(tmp_path / "shared.sqlite3")
    workers = [context.Process(target=_acquire_machines, args=(path, owner, 40, start, results))
               for owner in ("A", "B")]
    for worker in workers:
        worker.start()
    start.set()
    won = [results.get(timeout=60), results.get(timeout=60)]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(won[0] + won[1]) == list(range(40))
    lock = SqliteMachineLock(Path(path))
    assert {lock.get(f"m{i}").owner for i in won[0]} <= {"A", "B"}


def test_the_job_queue_and_the_lock_share_one_sqlite_file_with_the_datasets(
    tmp_path: Path,
) -> None:
    from platform_core.adapters.local import SqliteDatasetRepository

    db = tmp_path / "mlbot.db"
    SqliteDatasetRepository(db)
    queue, lock = SqliteJobQueue(db), SqliteMachineLock(db)
    queue.submit(make_job())
    assert lock.acquire("local", "job-1", LEASE, T0)
    assert SqliteJobQueue(db).get("job-1") == make_job()


def test_an_unusable_sqlite_path_surfaces_as_storage_error(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    for adapter in (SqliteJobQueue, SqliteMachineLock):
        with pytest.raises(StorageError) as caught:
            adapter(tmp_path / "a-directory")
        assert caught.value.operation == "init"


def test_a_missing_table_surfaces_as_storage_error_not_a_boto_error(
    aws_credentials: None,
) -> None:
    with mock_aws():
        dynamodb = make_boto3_client("dynamodb", Settings(region="us-east-1"))
        jobs = DynamoJobQueue(table_name="NoSuchTable", client=dynamodb)
        lock = DynamoMachineLock(table_name="NoSuchTable", client=dynamodb)
        for action in (lambda: jobs.submit(make_job()), lambda: jobs.get("j"), jobs.queued,
                       lambda: jobs.claim("j", "i", T0, LEASE), lambda: jobs.active_for("t", "n"),
                       lambda: lock.acquire("m", "o", LEASE, T0), lambda: lock.get("m")):
            with pytest.raises(StorageError) as caught:
                action()
            assert caught.value.cause == "ResourceNotFoundException"


def test_aws_adapters_build_a_default_client_on_first_use_not_at_construction(
    aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # building a client now would fail: no region
    jobs, lock = DynamoJobQueue(table_name="Job"), DynamoMachineLock(table_name="MachineStatus")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        infra.create_tables(make_boto3_client("dynamodb", Settings(region="us-east-1")))
        assert jobs.submit(make_job()) == make_job()
        assert lock.acquire("i-1", "job-1", LEASE, T0)


def test_a_jobs_file_made_before_leases_gains_the_new_columns_and_keeps_its_jobs(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:  # the first release's table
        conn.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, "
                     "kind TEXT NOT NULL, recipe TEXT NOT NULL, dataset_path TEXT NOT NULL, dataset_version "
                     "INTEGER NOT NULL, requested_by TEXT NOT NULL, reply_to TEXT NOT NULL, state TEXT NOT NULL, "
                     "enqueued_at REAL NOT NULL, started_at REAL, finished_at REAL, trainer TEXT, error TEXT, "
                     "model_version INTEGER)")
        conn.execute("INSERT INTO jobs VALUES ('old', 't', 'n', 'image', 'fast', 'p', 1, 'u', '{}', 'queued', "
                     f"{T0}, NULL, NULL, NULL, NULL, NULL)")
    jobs = SqliteJobQueue(db)
    old = jobs.get("old")
    assert (old.attempts, old.lease_expires_at, old.pool, old.state) == (0, 0.0, "cpu", "queued")
    assert jobs.claim("old", "i-1", T0 + 1, LEASE) and jobs.get("old").attempts == 1


def test_a_won_claim_records_the_tenants_turn_and_a_lost_one_does_not(training: Training) -> None:
    training.jobs.submit(make_job("a1", tenant="A"))
    training.jobs.submit(make_job("a2", tenant="A"))
    training.jobs.submit(make_job("b1", tenant="B"))
    assert training.jobs.served(["A", "B", "C"]) == {}
    assert training.jobs.claim("a1", "i-1", T0 + 5, LEASE)
    assert training.jobs.claim("a1", "i-2", T0 + 6, LEASE) is False
    assert training.jobs.served(["A", "B"]) == {"A": T0 + 5}
    assert training.jobs.claim("a2", "i-2", T0 + 7, LEASE) and training.jobs.claim("b1", "i-3", T0 + 8, LEASE)
    assert training.jobs.served({"A", "B"}) == {"A": T0 + 7, "B": T0 + 8}
    assert training.jobs.served([]) == {}
    assert [j.job_id for j in training.jobs.queued()] == [] and len(training.jobs.running()) == 3
