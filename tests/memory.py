"""In-memory adapters for every storage port, and a Backend that builds them: the use-case tests' fakes.

They pass the contract suites the local and AWS adapters pass (tests/contract), so a rule tested on them
holds on SQLite and on DynamoDB; the contract tests and a few end-to-end paths keep the real adapters.
Each store keeps copies behind one lock, so the racing tests hold here too, and nothing touches a disk.
"""
from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import replace
from typing import Callable

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (IdempotencyItemAlreadyExistsError,
                                                                    IdempotencyItemNotFoundError)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from bot.wiring import build_services
from handlers.services import Services
from platform_core.adapters.aws_idempotency import PowertoolsIdempotency, may_take
from platform_core.adapters.local import check_key
from platform_core.adapters.local_events import LocalEventBus
from platform_core.backend import Backend
from platform_core.config import Settings
from platform_core.errors import BlobNotFound, ConcurrentUpdate, DatasetExists
from platform_core.events import TrainingEvent
from platform_core.jobs import Job, JobState, MachineStatus, QueueDepth, Ticket
from platform_core.ports import (BlobStore, DatasetRepository, EventBus, Idempotency, JobQueue, MachineLock,
                                 NotificationLog, TrainerLauncher, TrainingQueue)
from platform_core.records import DatasetRecord

_FINAL_STATES = (JobState.SUCCEEDED.value, JobState.FAILED.value)
_ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)


class MemoryBlobStore:
    """BlobStore in a dict; keys are checked as the local store checks them."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        check_key(key)
        with self._lock:
            self._blobs[key] = bytes(data)

    def get(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            if key not in self._blobs:
                raise BlobNotFound(key)
            return self._blobs[key]

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._blobs

    def size(self, key: str) -> int:
        return len(self.get(key))

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._blobs.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(key for key in self._blobs if key.startswith(prefix))

    def upload_form(self, key: str, **_: object) -> None:
        return None


class MemoryDatasetRepository:
    """DatasetRepository in a dict keyed by (tenant, name); create and replace are conditional."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], DatasetRecord] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, name: str) -> DatasetRecord | None:
        with self._lock:
            stored = self._records.get((tenant, name))
            return None if stored is None else copy.deepcopy(stored)

    def create(self, record: DatasetRecord) -> None:
        with self._lock:
            if (record.tenant, record.name) in self._records:
                raise DatasetExists(record.name)
            self._records[(record.tenant, record.name)] = copy.deepcopy(record)

    def replace(self, record: DatasetRecord, expected_revision: int) -> None:
        with self._lock:
            stored = self._records.get((record.tenant, record.name))
            if stored is None or stored.revision != expected_revision:
                raise ConcurrentUpdate(record.name)
            self._records[(record.tenant, record.name)] = copy.deepcopy(record)

    def delete(self, tenant: str, name: str) -> None:
        with self._lock:
            self._records.pop((tenant, name), None)

    def list(self, tenant: str) -> list[DatasetRecord]:
        with self._lock:
            mine = [copy.deepcopy(r) for (t, _), r in self._records.items() if t == tenant]
        return sorted(mine, key=lambda r: r.name)


class MemoryJobQueue:
    """JobQueue in a dict; unstamped jobs are stamped by ``clock`` in insert order."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._jobs: dict[str, Job] = {}
        self._turns: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def submit(self, job: Job) -> Job:
        with self._lock:
            if job.job_id not in self._jobs:
                stamp = job.enqueued_at
                if not stamp:
                    latest = max((j.enqueued_at for j in self._jobs.values()), default=0.0)
                    stamp = max(float(self._clock()), latest + 1e-6)
                self._jobs[job.job_id] = replace(job, state=JobState(job.state).value, enqueued_at=stamp)
            return replace(self._jobs[job.job_id])

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            stored = self._jobs.get(job_id)
            return None if stored is None else replace(stored)

    def queued(self) -> list[Job]:
        return self._in_state(JobState.QUEUED.value)

    def running(self) -> list[Job]:
        return self._in_state(JobState.RUNNING.value)

    def _in_state(self, state: str) -> list[Job]:
        with self._lock:
            jobs = [replace(j) for j in self._jobs.values() if j.state == state]
        return sorted(jobs, key=lambda j: (j.enqueued_at, j.job_id))

    def active_for(self, tenant: str, name: str) -> Job | None:
        with self._lock:
            active = [replace(j) for j in self._jobs.values()
                      if j.tenant == tenant and j.name == name and j.state in _ACTIVE_STATES]
        active.sort(key=lambda j: (j.state != JobState.RUNNING.value, j.enqueued_at, j.job_id))
        return active[0] if active else None

    def claim(self, job_id: str, trainer: str, now: float, lease_s: float) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not (job.state == JobState.QUEUED.value or job.lease_expired(now)):
                return False
            self._jobs[job_id] = replace(job, state=JobState.RUNNING.value, trainer=trainer, started_at=now,
                                         lease_expires_at=now + lease_s, attempts=job.attempts + 1)
            self._turns[job.tenant] = max(now, self._turns.get(job.tenant, now))
            return True

    def served(self, tenants) -> dict[str, float]:
        with self._lock:
            return {t: self._turns[t] for t in set(tenants) if t in self._turns}

    def heartbeat(self, job_id: str, trainer: str, now: float, lease_s: float) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != JobState.RUNNING.value or job.trainer != trainer:
                return False
            self._jobs[job_id] = replace(job, lease_expires_at=now + lease_s)
            return True

    def finish(self, job_id: str, state: JobState, now: float, *, error: str | None = None,
               model_version: int | None = None, trainer: str | None = None) -> bool:
        final = JobState(state).value
        if final not in _FINAL_STATES:
            raise ValueError(f"finish needs a final state, not {final!r}")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state not in _ACTIVE_STATES or (trainer is not None and job.trainer != trainer):
                return False
            self._jobs[job_id] = replace(job, state=final, finished_at=now, error=error,
                                         model_version=model_version, lease_expires_at=0.0)
            return True


class MemoryTrainingQueue:
    """TrainingQueue in a list with SQS's visibility, redelivery and dead-letter semantics, against ``clock``."""

    def __init__(self, clock: Callable[[], float] = time.time, max_receives: int = 3) -> None:
        self._clock, self._max = clock, max_receives
        self._tickets: list[dict] = []
        self._dead: list[dict] = []
        self._lock = threading.Lock()
        self._serial = 0

    def _next(self) -> str:
        self._serial += 1
        return f"r{self._serial}"

    def send(self, job: Job, generation: int = 0) -> None:
        with self._lock:
            self._tickets.append({"job_id": job.job_id, "tenant": job.tenant, "visible_at": self._clock(),
                                  "receipt": None, "receives": 0, "generation": generation})

    def receive(self, wait_s: float, visibility_s: float) -> Ticket | None:
        now = self._clock()
        with self._lock:
            self._bury(now)
            for entry in list(self._tickets):
                if entry["visible_at"] > now:
                    continue
                entry.update(receipt=self._next(), visible_at=now + visibility_s, receives=entry["receives"] + 1)
                return Ticket(entry["job_id"], entry["receipt"], entry["receives"], entry["tenant"], entry["generation"])
        return None

    def _bury(self, now: float) -> None:
        """Tickets due again after max_receives deliveries become dead letters (call under the lock)."""
        for entry in [e for e in self._tickets if e["visible_at"] <= now and e["receives"] >= self._max]:
            self._tickets.remove(entry)
            self._dead.append({**entry, "receipt": self._next()})

    def _held(self, ticket: Ticket) -> dict | None:
        return next((e for e in self._tickets if e["receipt"] == ticket.receipt), None)

    def extend(self, ticket: Ticket, visibility_s: float) -> bool:
        with self._lock:
            entry = self._held(ticket)
            if entry is None:
                return False
            entry["visible_at"] = self._clock() + visibility_s
            return True

    def release(self, ticket: Ticket) -> None:
        self.extend(ticket, 0)

    def delete(self, ticket: Ticket) -> None:
        with self._lock:
            entry = self._held(ticket)
            if entry is not None:
                self._tickets.remove(entry)

    def depth(self) -> QueueDepth:
        now = self._clock()
        with self._lock:
            waiting = sum(1 for e in self._tickets if e["visible_at"] <= now)
            return QueueDepth(waiting=waiting, in_flight=len(self._tickets) - waiting)

    def dead_letters(self, limit: int = 10) -> list[Ticket]:
        with self._lock:
            self._bury(self._clock())
            return [Ticket(e["job_id"], e["receipt"], e["receives"], e["tenant"], e["generation"])
                    for e in self._dead[:limit]]

    def remove_dead_letter(self, ticket: Ticket) -> None:
        with self._lock:
            self._dead = [e for e in self._dead if e["receipt"] != ticket.receipt]


class MemoryMachineLock:
    """MachineLock in a dict: a lease is taken, extended or given back against the ``now`` passed in."""

    def __init__(self) -> None:
        self._rows: dict[str, MachineStatus] = {}
        self._lock = threading.Lock()

    def acquire(self, machine: str, owner: str, lease_s: float, now: float) -> bool:
        with self._lock:
            row = self._rows.get(machine)
            if row is not None and row.State != "Free" and row.lease_expires_at >= now:
                return False
            self._rows[machine] = MachineStatus(machine, "Busy", owner, now + lease_s)
            return True

    def heartbeat(self, machine: str, owner: str, lease_s: float, now: float) -> bool:
        with self._lock:
            row = self._rows.get(machine)
            if row is None or row.State != "Busy" or row.owner != owner or row.lease_expires_at < now:
                return False
            self._rows[machine] = replace(row, lease_expires_at=now + lease_s)
            return True

    def release(self, machine: str, owner: str) -> bool:
        with self._lock:
            row = self._rows.get(machine)
            if row is None or row.State != "Busy" or row.owner != owner:
                return False
            self._rows[machine] = MachineStatus(machine, "Free", None, 0.0)
            return True

    def get(self, machine: str) -> MachineStatus | None:
        with self._lock:
            row = self._rows.get(machine)
            return None if row is None else replace(row)


class MemoryEventBus(LocalEventBus):
    """In-process delivery to subscribers, as the local backend does, keeping what was published."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[TrainingEvent] = []

    def publish(self, event: TrainingEvent) -> None:
        self.published.append(event)
        super().publish(event)


class MemoryPersistenceLayer(BasePersistenceLayer):
    """Powertools' idempotency records in a dict, taken under DynamoDB's condition (adapters.aws_idempotency)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, DataRecord] = {}
        self._lock = threading.Lock()

    def _get_record(self, idempotency_key: str) -> DataRecord:
        with self._lock:
            if idempotency_key not in self.records:
                raise IdempotencyItemNotFoundError
            return copy.copy(self.records[idempotency_key])

    def _put_record(self, data_record: DataRecord) -> None:
        with self._lock:
            old = self.records.get(data_record.idempotency_key)
            if old is not None and not may_take(old._status, old.expiry_timestamp, old.in_progress_expiry_timestamp):
                raise IdempotencyItemAlreadyExistsError(old_data_record=copy.copy(old))
            self.records[data_record.idempotency_key] = copy.copy(data_record)

    def _update_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self.records[data_record.idempotency_key] = copy.copy(data_record)

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self.records.pop(data_record.idempotency_key, None)


def MemoryIdempotency(**options) -> PowertoolsIdempotency:
    """The Idempotency port of the memory backend: Powertools over a dict."""
    return PowertoolsIdempotency(MemoryPersistenceLayer(), **options)


class MemoryRateLimiter:
    """Fixed-window request counts in a dict."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, limit: int, window_s: int, now: float) -> float:
        window = int(now // window_s)
        with self._lock:
            seen, count = self._counts.get(key, (window, 0))
            count = count if seen == window else 0
            if count >= limit:
                return (window + 1) * window_s - now
            self._counts[key] = (window, count + 1)
        return 0.0


class MemoryNotificationLog:
    """Each job's notes, kept as JSON would keep them (what SQLite and DynamoDB could not store fails here)."""

    def __init__(self) -> None:
        self._notes: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> dict:
        with self._lock:
            return json.loads(self._notes.get(job_id, "{}"))

    def update(self, job_id: str, **fields) -> dict:
        with self._lock:
            notes = {**json.loads(self._notes.get(job_id, "{}")), **fields}
            self._notes[job_id] = json.dumps(notes, sort_keys=True, default=str)
            return json.loads(self._notes[job_id])

    def add(self, job_id: str, field: str, value) -> bool:
        with self._lock:
            notes = json.loads(self._notes.get(job_id, "{}"))
            if field in notes:
                return False
            self._notes[job_id] = json.dumps({**notes, field: value}, sort_keys=True, default=str)
            return True


class MemoryBackend(Backend):
    """Every port in memory, built once per backend; ``clock`` stamps the queue's unstamped jobs."""

    name = "memory"

    def __init__(self, settings: Settings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings or Settings(backend="local"))
        self.clock = clock

    def _blobs(self) -> BlobStore:
        return MemoryBlobStore()

    def _records(self) -> DatasetRepository:
        return MemoryDatasetRepository()

    def _jobs(self) -> JobQueue:
        return MemoryJobQueue(self.clock)

    def _queue(self, pool: str) -> TrainingQueue:
        return MemoryTrainingQueue(self.clock)

    def _machine_lock(self) -> MachineLock:
        return MemoryMachineLock()

    def _events(self) -> EventBus:
        return MemoryEventBus()

    def _idempotency(self) -> Idempotency:
        return MemoryIdempotency()

    def _notifications(self) -> NotificationLog:
        return MemoryNotificationLog()

    def _rate_limiter(self) -> MemoryRateLimiter:
        return MemoryRateLimiter()


def memory_services(backend: MemoryBackend | None = None, *, launcher: TrainerLauncher | None = None) -> Services:
    """The use cases' Services over ``backend`` by the real wiring function, predicting in process as
    `mlbot` does locally (the inference Lambda's own handler function over the same stores)."""
    from lambda_predict.handler import InProcessPredictions
    from lambda_predict.predictor import Predictor

    backend = backend or MemoryBackend()
    services = build_services(backend.settings, backend=backend, launcher=launcher or (lambda job: None))
    services.predictor = InProcessPredictions(Predictor(blobs=backend.blobs, records=backend.records), backend.blobs)
    return services
