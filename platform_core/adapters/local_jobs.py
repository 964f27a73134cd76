"""Local adapters for the jobs table and the trainer lock: one SQLite file for threads and processes (the
training queue's tickets are in local_queue, in the same file).

Same conventions as ``local.py``: a connection per call, WAL, a busy timeout, and every state change
a single ``UPDATE ... WHERE <condition>`` whose rowcount says whether it won.
"""
from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from platform_core.adapters.local import SqliteFile
from platform_core.jobs import Job, JobState, MachineStatus

_JOB_COLUMNS = tuple(f.name for f in fields(Job))
_SELECT_JOB = f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs"
_FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED)


class SqliteJobQueue:
    """JobQueue in SQLite: one row per job, queue order from an index on (state, enqueued_at)."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
        "name TEXT NOT NULL, kind TEXT NOT NULL, recipe TEXT NOT NULL, dataset_path TEXT NOT NULL, "
        "dataset_version INTEGER NOT NULL, requested_by TEXT NOT NULL, reply_to TEXT NOT NULL, "
        "state TEXT NOT NULL, enqueued_at REAL NOT NULL, started_at REAL, finished_at REAL, "
        "trainer TEXT, error TEXT, model_version INTEGER, attempts INTEGER NOT NULL DEFAULT 0, "
        "lease_expires_at REAL NOT NULL DEFAULT 0, pool TEXT NOT NULL DEFAULT 'cpu')",
        "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, enqueued_at, job_id)",
        "CREATE INDEX IF NOT EXISTS jobs_by_dataset ON jobs (tenant, name, state)",
        "CREATE TABLE IF NOT EXISTS tenant_turns (tenant TEXT PRIMARY KEY, last_claimed REAL NOT NULL)",
    )
    # Columns added since the first release, for a $MLBOT_HOME made by an older version.
    _ADDED = {"attempts": "INTEGER NOT NULL DEFAULT 0", "lease_expires_at": "REAL NOT NULL DEFAULT 0",
              "pool": "TEXT NOT NULL DEFAULT 'cpu'"}

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self._db = SqliteFile(path, self._SCHEMA, busy_timeout_s)
        with self._db.transaction("migrate", "jobs") as conn:
            present = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
            for column, spec in self._ADDED.items():
                if column not in present:
                    conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} {spec}")

    def submit(self, job: Job) -> Job:
        """Insert the job unless its job_id exists; return what is stored either way.

        A job without an enqueued_at (0) is stamped here, under SQLite's write lock and never before a job
        already stored, so queue order is insert order and a position computed after submit stays true."""
        row = {**job.as_dict(), "reply_to": json.dumps(job.reply_to.as_dict() if job.reply_to else {}, sort_keys=True),
               "state": JobState(job.state).value}
        placeholders = ", ".join("?" for _ in _JOB_COLUMNS)
        with self._db.transaction("submit", job.job_id) as conn:
            conn.execute("BEGIN IMMEDIATE")
            if not row["enqueued_at"]:
                latest = conn.execute("SELECT MAX(enqueued_at) FROM jobs").fetchone()[0] or 0.0
                row["enqueued_at"] = max(time.time(), latest + 1e-6)
            conn.execute(
                f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({placeholders}) "
                "ON CONFLICT (job_id) DO NOTHING",
                [row[c] for c in _JOB_COLUMNS],
            )
            stored = conn.execute(f"{_SELECT_JOB} WHERE job_id=?", (job.job_id,)).fetchone()
        return _job(stored)

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        with self._db.transaction("get", job_id) as conn:
            row = conn.execute(f"{_SELECT_JOB} WHERE job_id=?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def queued(self) -> list[Job]:
        """Queued jobs by (enqueued_at, job_id)."""
        return self._in_state(JobState.QUEUED)

    def running(self) -> list[Job]:
        """Running jobs by (enqueued_at, job_id)."""
        return self._in_state(JobState.RUNNING)

    def _in_state(self, state: JobState) -> list[Job]:
        with self._db.transaction(state.value, "jobs") as conn:
            rows = conn.execute(
                f"{_SELECT_JOB} WHERE state=? ORDER BY enqueued_at, job_id", (state.value,)
            ).fetchall()
        return [_job(row) for row in rows]

    def active_for(self, tenant: str, name: str) -> Job | None:
        """The dataset's running job, else its first queued one, else None."""
        with self._db.transaction("active_for", f"{tenant}/{name}") as conn:
            row = conn.execute(
                f"{_SELECT_JOB} WHERE tenant=? AND name=? AND state IN (?, ?) "
                "ORDER BY state=? DESC, enqueued_at, job_id LIMIT 1",
                (tenant, name, JobState.QUEUED.value, JobState.RUNNING.value,
                 JobState.RUNNING.value),
            ).fetchone()
        return None if row is None else _job(row)

    def claim(self, job_id: str, trainer: str, now: float, lease_s: float) -> bool:
        """QUEUED, or RUNNING with an expired lease -> RUNNING for ``trainer``, one more attempt."""
        with self._db.transaction("claim", job_id) as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state=?, trainer=?, started_at=?, lease_expires_at=?, attempts=attempts+1 "
                "WHERE job_id=? AND (state=? OR (state=? AND lease_expires_at < ?))",
                (JobState.RUNNING.value, trainer, now, now + lease_s, job_id, JobState.QUEUED.value,
                 JobState.RUNNING.value, now),
            )
            if cursor.rowcount != 1:
                return False
            conn.execute("INSERT INTO tenant_turns (tenant, last_claimed) SELECT tenant, ? FROM jobs WHERE job_id=? "
                         "ON CONFLICT (tenant) DO UPDATE SET last_claimed=MAX(last_claimed, excluded.last_claimed)",
                         (now, job_id))
            return True

    def served(self, tenants) -> dict[str, float]:
        """Each tenant's last claim time."""
        wanted = sorted(set(tenants))
        if not wanted:
            return {}
        with self._db.transaction("served", "tenants") as conn:
            rows = conn.execute(f"SELECT tenant, last_claimed FROM tenant_turns WHERE tenant IN "
                                f"({', '.join('?' for _ in wanted)})", wanted).fetchall()
        return {tenant: float(at) for tenant, at in rows}

    def heartbeat(self, job_id: str, trainer: str, now: float, lease_s: float) -> bool:
        """Extend ``trainer``'s lease while it holds the running job."""
        with self._db.transaction("heartbeat", job_id) as conn:
            cursor = conn.execute(
                "UPDATE jobs SET lease_expires_at=? WHERE job_id=? AND state=? AND trainer=?",
                (now + lease_s, job_id, JobState.RUNNING.value, trainer),
            )
            return cursor.rowcount == 1

    def finish(self, job_id: str, state: JobState, now: float, *, error: str | None = None,
               model_version: int | None = None, trainer: str | None = None) -> bool:
        """QUEUED/RUNNING -> ``state`` (SUCCEEDED or FAILED); False if missing, finished, or (with
        ``trainer``) held by another trainer."""
        state = JobState(state)
        if state not in _FINAL_STATES:
            raise ValueError(f"finish needs a final state, not {state.value!r}")
        holder = " AND trainer=?" if trainer is not None else ""
        with self._db.transaction("finish", job_id) as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state=?, finished_at=?, error=?, model_version=?, lease_expires_at=0 "
                f"WHERE job_id=? AND state IN (?, ?){holder}",
                (state.value, now, error, model_version, job_id, JobState.QUEUED.value, JobState.RUNNING.value,
                 *((trainer,) if trainer is not None else ())),
            )
            return cursor.rowcount == 1


def _job(row: tuple[Any, ...]) -> Job:
    data = dict(zip(_JOB_COLUMNS, row))
    data["reply_to"] = json.loads(data["reply_to"])
    return Job(**data)


class SqliteMachineLock:
    """MachineLock in SQLite: an upsert that only overwrites a Free or expired row."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS machine_status (name TEXT PRIMARY KEY, State TEXT NOT NULL, "
        "owner TEXT, lease_expires_at REAL NOT NULL)",
    )

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self._db = SqliteFile(path, self._SCHEMA, busy_timeout_s)

    def acquire(self, machine: str, owner: str, lease_s: float, now: float) -> bool:
        """Busy for ``owner`` until now + lease_s if absent, Free, or expired before now."""
        with self._db.transaction("acquire", machine) as conn:
            cursor = conn.execute(
                "INSERT INTO machine_status (name, State, owner, lease_expires_at) "
                "VALUES (?, 'Busy', ?, ?) ON CONFLICT (name) DO UPDATE SET State='Busy', "
                "owner=excluded.owner, lease_expires_at=excluded.lease_expires_at "
                "WHERE machine_status.State='Free' OR machine_status.lease_expires_at < ?",
                (machine, owner, now + lease_s, now),
            )
            return cursor.rowcount == 1

    def heartbeat(self, machine: str, owner: str, lease_s: float, now: float) -> bool:
        """Extend the lease to now + lease_s while ``owner`` holds an unexpired lease."""
        with self._db.transaction("heartbeat", machine) as conn:
            cursor = conn.execute(
                "UPDATE machine_status SET lease_expires_at=? WHERE name=? AND State='Busy' "
                "AND owner=? AND lease_expires_at >= ?",
                (now + lease_s, machine, owner, now),
            )
            return cursor.rowcount == 1

    def release(self, machine: str, owner: str) -> bool:
        """Free the machine if ``owner`` holds it (even past its lease); never another's."""
        with self._db.transaction("release", machine) as conn:
            cursor = conn.execute(
                "UPDATE machine_status SET State='Free', owner=NULL, lease_expires_at=0 "
                "WHERE name=? AND State='Busy' AND owner=?",
                (machine, owner),
            )
            return cursor.rowcount == 1

    def get(self, machine: str) -> MachineStatus | None:
        """The machine's row, or None."""
        with self._db.transaction("get", machine) as conn:
            row = conn.execute(
                "SELECT name, State, owner, lease_expires_at FROM machine_status WHERE name=?",
                (machine,),
            ).fetchone()
        return None if row is None else MachineStatus(*row)
