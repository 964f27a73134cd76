"""Local adapter for the training queue: tickets in the jobs' SQLite file, with SQS's semantics (visibility,
redelivery, a dead-letter state after too many deliveries), for threads and processes alike."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

from platform_core.adapters.local import SqliteFile
from platform_core.jobs import Job, QueueDepth, Ticket


class SqliteTrainingQueue:
    """TrainingQueue in SQLite with SQS's semantics: a received ticket is invisible until its visibility
    timeout passes (then it is delivered again, with a new receipt), and one received ``max_receives``
    times moves to the dead letters instead of being delivered."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS tickets (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, tenant TEXT NOT NULL, "
        "sent_at REAL NOT NULL, visible_at REAL NOT NULL, receipt TEXT, receives INTEGER NOT NULL DEFAULT 0, "
        "dead INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0)",
        "CREATE INDEX IF NOT EXISTS tickets_by_visibility ON tickets (dead, visible_at, sent_at)",
    )

    def __init__(self, path: Path, *, queue: str = "cpu", max_receives: int = 3, busy_timeout_s: float = 30.0,
                 clock=time.time, poll_s: float = 0.2) -> None:
        self._db = SqliteFile(path, self._SCHEMA, busy_timeout_s)
        self._queue, self._max, self._clock, self._poll = queue, max_receives, clock, poll_s

    def _id(self) -> str:
        return f"{self._queue}:{uuid.uuid4().hex}"

    def send(self, job: Job, generation: int = 0) -> None:
        now = self._clock()
        with self._db.transaction("send", job.job_id) as conn:
            conn.execute("INSERT INTO tickets (id, job_id, tenant, sent_at, visible_at, generation) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (self._id(), job.job_id, job.tenant, now, now, generation))

    def receive(self, wait_s: float, visibility_s: float) -> Ticket | None:
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            ticket = self._receive_once(visibility_s)
            if ticket is not None or time.monotonic() >= deadline:
                return ticket
            time.sleep(self._poll)

    def _receive_once(self, visibility_s: float) -> Ticket | None:
        now = self._clock()
        mine = uuid.uuid4().hex
        with self._db.transaction("receive", self._queue) as conn:
            conn.execute("BEGIN IMMEDIATE")
            self._bury(conn, now)
            row = conn.execute(
                "SELECT id FROM tickets WHERE dead=0 AND id LIKE ? AND visible_at <= ? ORDER BY sent_at, id LIMIT 1",
                (f"{self._queue}:%", now)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE tickets SET receipt=?, visible_at=?, receives=receives+1 WHERE id=?",
                         (mine, now + visibility_s, row[0]))
            job_id, tenant, receives, generation = conn.execute(
                "SELECT job_id, tenant, receives, generation FROM tickets WHERE id=?", (row[0],)).fetchone()
        return Ticket(job_id=job_id, receipt=mine, receive_count=receives, tenant=tenant, generation=generation)

    def _bury(self, conn, now: float) -> None:
        """Tickets due again after max_receives deliveries become dead letters (SQS's redrive policy)."""
        conn.execute("UPDATE tickets SET dead=1 WHERE dead=0 AND id LIKE ? AND visible_at <= ? AND receives >= ?",
                     (f"{self._queue}:%", now, self._max))

    def extend(self, ticket: Ticket, visibility_s: float) -> bool:
        with self._db.transaction("extend", ticket.job_id) as conn:
            cursor = conn.execute("UPDATE tickets SET visible_at=? WHERE receipt=? AND dead=0",
                                  (self._clock() + visibility_s, ticket.receipt))
            return cursor.rowcount == 1

    def release(self, ticket: Ticket) -> None:
        with self._db.transaction("release", ticket.job_id) as conn:
            conn.execute("UPDATE tickets SET visible_at=? WHERE receipt=? AND dead=0", (self._clock(), ticket.receipt))

    def delete(self, ticket: Ticket) -> None:
        with self._db.transaction("delete", ticket.job_id) as conn:
            conn.execute("DELETE FROM tickets WHERE receipt=? AND dead=0", (ticket.receipt,))

    def depth(self) -> QueueDepth:
        now = self._clock()
        with self._db.transaction("depth", self._queue) as conn:
            waiting, held = conn.execute(
                "SELECT COALESCE(SUM(visible_at <= ?), 0), COALESCE(SUM(visible_at > ?), 0) FROM tickets "
                "WHERE dead=0 AND id LIKE ?", (now, now, f"{self._queue}:%")).fetchone()
        return QueueDepth(waiting=int(waiting), in_flight=int(held))

    def dead_letters(self, limit: int = 10) -> list[Ticket]:
        now = self._clock()
        with self._db.transaction("dead_letters", self._queue) as conn:
            self._bury(conn, now)
            rows = conn.execute("SELECT id, job_id, tenant, receives, generation FROM tickets WHERE dead=1 AND "
                                "id LIKE ? ORDER BY sent_at LIMIT ?", (f"{self._queue}:%", limit)).fetchall()
        return [Ticket(job_id=job_id, receipt=id_, receive_count=receives, tenant=tenant, generation=generation)
                for id_, job_id, tenant, receives, generation in rows]

    def remove_dead_letter(self, ticket: Ticket) -> None:
        with self._db.transaction("remove_dead_letter", ticket.job_id) as conn:
            conn.execute("DELETE FROM tickets WHERE id=? AND dead=1", (ticket.receipt,))
