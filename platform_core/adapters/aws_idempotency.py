"""Idempotency ("do this once per key") with Powertools for AWS Lambda's idempotency utility, over any of
its persistence layers: DynamoDB on AWS (Powertools' own layer, on the stack's Idempotency table), SQLite
locally, a dict in tests (both below and in tests.memory, with DynamoDB's conditions).

A key is taken IN_PROGRESS before the work and COMPLETED after it (kept WEBHOOK_KEY_TTL_S); if the work
raises, the key is deleted, so a retry does the work; if the attempt dies (a Lambda timeout, out of
memory, a killed process) the key stays IN_PROGRESS only until that attempt's deadline: the Lambda
invocation's own (``register_lambda_context``), or ``in_progress_s`` from the start outside Lambda. A
retry while the first attempt runs, or after it completed, does nothing.
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Callable

from aws_lambda_powertools.utilities.idempotency import (BasePersistenceLayer, IdempotencyConfig,
                                                         idempotent_function)
from aws_lambda_powertools.utilities.idempotency.exceptions import (IdempotencyAlreadyInProgressError,
                                                                    IdempotencyItemAlreadyExistsError,
                                                                    IdempotencyItemNotFoundError,
                                                                    IdempotencyPersistenceLayerError)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord

from platform_core.errors import StorageError
from platform_core.ports import WEBHOOK_KEY_TTL_S

IN_PROGRESS_S = 900.0  # outside Lambda: how long a started attempt holds its key (the functions' limit is 300 s)
INPROGRESS = STATUS_CONSTANTS["INPROGRESS"]


class _FixedDeadline:
    """What Powertools asks a Lambda context for, outside Lambda: the same time left at every start."""

    def __init__(self, seconds: float) -> None:
        self._ms = int(seconds * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return self._ms


def _perform(request: dict, work: Callable[[], None]) -> bool:
    work()
    return True


class PowertoolsIdempotency:
    """The Idempotency port over a Powertools persistence layer."""

    def __init__(self, layer: BasePersistenceLayer, *, ttl_s: float = WEBHOOK_KEY_TTL_S,
                 in_progress_s: float = IN_PROGRESS_S) -> None:
        self.layer = layer
        self._fixed = _FixedDeadline(in_progress_s)
        self._config = IdempotencyConfig(event_key_jmespath="key", raise_on_no_idempotency_key=True,
                                         expires_after_seconds=int(ttl_s), lambda_context=self._fixed)
        self._run = idempotent_function(data_keyword_argument="request", persistence_store=layer,
                                        config=self._config, key_prefix="mlbot")(_perform)

    def register_lambda_context(self, context: Any) -> None:
        """This invocation's deadline bounds the keys it takes (Lambda handles one request at a time)."""
        has_deadline = callable(getattr(context, "get_remaining_time_in_millis", None))
        self._config.register_lambda_context(context if has_deadline else self._fixed)

    def once(self, key: str, work: Callable[[], None]) -> bool:
        ran = threading.Event()

        def attempt() -> None:
            work()
            ran.set()
        try:
            self._run(request={"key": key}, work=attempt)
        except IdempotencyAlreadyInProgressError:
            return False
        except IdempotencyPersistenceLayerError as exc:
            raise StorageError("once", key, str(exc)) from exc
        return ran.is_set()


def may_take(status: str, expires_at: int, in_progress_until: int | None) -> bool:
    """DynamoDB's condition in Powertools' own layer, for the other stores: a key may be taken again once it
    expired, or when its attempt is in progress past that attempt's deadline."""
    now = dt.datetime.now().timestamp()
    return expires_at < int(now) or (status == INPROGRESS and in_progress_until is not None
                                     and in_progress_until < int(now * 1000))


class SqlitePersistenceLayer(BasePersistenceLayer):
    """Powertools' persistence contract in one SQLite table (local backend)."""

    _SCHEMA = ("CREATE TABLE IF NOT EXISTS once (key TEXT PRIMARY KEY, status TEXT NOT NULL, "
               "expires_at INTEGER NOT NULL, in_progress_until INTEGER, data TEXT)",)

    def __init__(self, path: Any, *, busy_timeout_s: float = 30.0) -> None:
        from platform_core.adapters.local import SqliteFile

        super().__init__()
        self._db = SqliteFile(path, self._SCHEMA, busy_timeout_s)

    def _get_record(self, idempotency_key: str) -> DataRecord:
        with self._db.transaction("get", idempotency_key) as conn:
            row = conn.execute("SELECT status, expires_at, in_progress_until, data FROM once WHERE key=?",
                               (idempotency_key,)).fetchone()
        if row is None:
            raise IdempotencyItemNotFoundError
        return _record(idempotency_key, *row)

    def _put_record(self, data_record: DataRecord) -> None:
        key = data_record.idempotency_key
        with self._db.transaction("put", key, keep=(IdempotencyItemAlreadyExistsError,)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT status, expires_at, in_progress_until, data FROM once WHERE key=?",
                               (key,)).fetchone()
            if row is not None and not may_take(row[0], row[1], row[2]):
                raise IdempotencyItemAlreadyExistsError(old_data_record=_record(key, *row))
            conn.execute("INSERT OR REPLACE INTO once (key, status, expires_at, in_progress_until, data) "
                         "VALUES (?, ?, ?, ?, NULL)", (key, data_record.status, data_record.expiry_timestamp,
                                                       data_record.in_progress_expiry_timestamp))

    def _update_record(self, data_record: DataRecord) -> None:
        with self._db.transaction("update", data_record.idempotency_key) as conn:
            conn.execute("UPDATE once SET status=?, expires_at=?, data=? WHERE key=?",
                         (data_record.status, data_record.expiry_timestamp, data_record.response_data,
                          data_record.idempotency_key))

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._db.transaction("delete", data_record.idempotency_key) as conn:
            conn.execute("DELETE FROM once WHERE key=?", (data_record.idempotency_key,))


def _record(key: str, status: str, expires_at: int, in_progress_until: int | None, data: str | None) -> DataRecord:
    return DataRecord(idempotency_key=key, status=status, expiry_timestamp=expires_at,
                      in_progress_expiry_timestamp=in_progress_until, response_data=data or "")


def dynamodb_idempotency(table_name: str, client: Any) -> PowertoolsIdempotency:
    """On AWS: Powertools' DynamoDB layer on the stack's Idempotency table (key ``key``, TTL ``expires_at``)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return PowertoolsIdempotency(DynamoDBPersistenceLayer(table_name=table_name, key_attr="key",
                                                          expiry_attr="expires_at", boto3_client=client))
