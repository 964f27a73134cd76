"""Local adapter for the chat side: the notification log, in SQLite (idempotency: adapters.aws_idempotency)."""
from __future__ import annotations

import json
from pathlib import Path

from platform_core.adapters.local import SqliteFile


class SqliteNotificationLog:
    """NotificationLog as one JSON document per job, merged inside a write transaction."""

    _SCHEMA = ("CREATE TABLE IF NOT EXISTS notifications (job_id TEXT PRIMARY KEY, notes TEXT NOT NULL)",)

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self._db = SqliteFile(path, self._SCHEMA, busy_timeout_s)

    def get(self, job_id: str) -> dict:
        with self._db.transaction("get", job_id) as conn:
            row = conn.execute("SELECT notes FROM notifications WHERE job_id=?", (job_id,)).fetchone()
        return {} if row is None else json.loads(row[0])

    def update(self, job_id: str, **fields) -> dict:
        return self._merge("update", job_id, fields, only_new=False)[0]

    def add(self, job_id: str, field: str, value) -> bool:
        return self._merge("add", job_id, {field: value}, only_new=True)[1]

    def _merge(self, operation: str, job_id: str, fields: dict, *, only_new: bool) -> tuple[dict, bool]:
        with self._db.transaction(operation, job_id) as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT notes FROM notifications WHERE job_id=?", (job_id,)).fetchone()
            notes = {} if row is None else json.loads(row[0])
            if only_new and any(f in notes for f in fields):
                return notes, False
            notes.update(fields)
            conn.execute("INSERT INTO notifications (job_id, notes) VALUES (?, ?) "
                         "ON CONFLICT (job_id) DO UPDATE SET notes = excluded.notes",
                         (job_id, json.dumps(notes, sort_keys=True, default=str)))
        return notes, True


class SqliteRateLimiter:
    """Fixed-window request counts in one table; a window's row is replaced when the next one starts."""

    _SCHEMA = ("CREATE TABLE IF NOT EXISTS rate (key TEXT PRIMARY KEY, window INTEGER NOT NULL, "
               "count INTEGER NOT NULL)",)

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self._db = SqliteFile(path, self._SCHEMA, busy_timeout_s)

    def allow(self, key: str, limit: int, window_s: int, now: float) -> float:
        window = int(now // window_s)
        with self._db.transaction("allow", key) as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT window, count FROM rate WHERE key=?", (key,)).fetchone()
            count = row[1] if row is not None and row[0] == window else 0
            if count >= limit:
                return (window + 1) * window_s - now
            conn.execute("INSERT INTO rate (key, window, count) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                         "SET window = excluded.window, count = excluded.count", (key, window, count + 1))
        return 0.0
