"""AWS adapters for training: the Job table and the `MachineStatus` lock (DynamoDB); events are in aws_events.

Every state change is one conditional write, so DynamoDB decides races. Clients are injected by
the wiring code or built on first use; the boto3 plumbing is shared with ``aws.py``.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

# aws.py stays the one module importing boto3; its plumbing is shared rather than copied.
from platform_core.adapters.aws import DESERIALIZER, SERIALIZER, aws_errors, LazyClient
from platform_core.adapters.aws import from_dynamo, to_dynamo
from platform_core.errors import StorageError
from platform_core.jobs import Job, JobState, MachineStatus

QUEUE_INDEX = "QueueIndex"  # HASH state, RANGE enqueued_at
DATASET_INDEX = "DatasetIndex"  # HASH dataset (tenant + "/" + name), RANGE enqueued_at
_JOB_FLOATS = frozenset({"enqueued_at", "started_at", "finished_at"})
_FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED)
QUEUE_CLOCK = "#queue-clock"  # an item of the Job table outside both indexes: the last stamp handed out
CLOCK_ATTEMPTS = 50


class _ClockMoved(Exception):
    """Another submit advanced the queue clock between our read and our transaction."""


def _value(value: Any) -> dict[str, Any]:
    """One attribute value in DynamoDB's wire format; floats go through Decimal."""
    return SERIALIZER.serialize(to_dynamo(value))


def _conditional(dynamodb: Any, **request: Any) -> bool:
    """Run one conditional update_item; False when DynamoDB refused the condition."""
    try:
        dynamodb.update_item(**request)
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True


class DynamoJobQueue:
    """JobQueue over a table keyed by job_id, with GSIs for queue order and per-dataset lookup.

    Queries on a GSI are eventually consistent, so queued(), running() and active_for() may lag a
    write by a moment; claim() and finish() are conditional writes on the table and never do."""

    def __init__(self, *, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._dynamodb = LazyClient("dynamodb", client)

    def submit(self, job: Job) -> Job:
        """Put the job only if its job_id is new; otherwise return the stored job unchanged.

        A job without an enqueued_at (0) is stamped from the queue clock, an item of this table advanced in
        the same transaction that puts the job: jobs are stored in stamp order, so a position computed
        after submit stays true (as on SQLite)."""
        if job.enqueued_at:
            return self._put(job, None)
        for _ in range(CLOCK_ATTEMPTS):
            last = self._clock()
            stamped = replace(job, enqueued_at=max(time.time(), last + 1e-6))
            try:
                return self._put(stamped, last)
            except _ClockMoved:
                continue
        raise StorageError("submit", job.job_id, "the queue clock kept moving; try again")

    def _clock(self) -> float:
        with aws_errors("submit", QUEUE_CLOCK):
            item = self._dynamodb().get_item(TableName=self._table, Key={"job_id": {"S": QUEUE_CLOCK}},
                                              ConsistentRead=True).get("Item")
        return float(item["last"]["N"]) if item else 0.0

    def _put(self, job: Job, last: float | None) -> Job:
        item = {k: _value(v) for k, v in job.as_dict().items()}
        item["state"] = _value(JobState(job.state).value)
        item["dataset"] = _value(f"{job.tenant}/{job.name}")
        put = {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(#id)",
               "ExpressionAttributeNames": {"#id": "job_id"}}
        with aws_errors("submit", job.job_id):
            dynamodb = self._dynamodb()
            try:
                if last is None:
                    dynamodb.put_item(**put)
                else:
                    clock = {"TableName": self._table, "Key": {"job_id": {"S": QUEUE_CLOCK}},
                             "UpdateExpression": "SET #last = :new",
                             "ConditionExpression": "attribute_not_exists(#last) OR #last = :old",
                             "ExpressionAttributeNames": {"#last": "last"},
                             "ExpressionAttributeValues": {":new": _value(job.enqueued_at), ":old": _value(last)}}
                    dynamodb.transact_write_items(TransactItems=[{"Update": clock}, {"Put": put}])
            except dynamodb.exceptions.ConditionalCheckFailedException:
                stored = self.get(job.job_id)
                if stored is not None:
                    return stored
                raise
            except dynamodb.exceptions.TransactionCanceledException as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons[1:2] == ["ConditionalCheckFailed"]:  # the job id exists: idempotent
                    stored = self.get(job.job_id)
                    if stored is not None:
                        return stored
                raise _ClockMoved() from None
        return _job(item)

    def get(self, job_id: str) -> Job | None:
        """A strongly consistent read of one job, or None."""
        with aws_errors("get", job_id):
            response = self._dynamodb().get_item(
                TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
            )
        item = response.get("Item")
        return _job(item) if item else None

    def queued(self) -> list[Job]:
        """Queued jobs by (enqueued_at, job_id)."""
        return self._query(QUEUE_INDEX, "state", JobState.QUEUED.value)

    def running(self) -> list[Job]:
        """Running jobs by (enqueued_at, job_id)."""
        return self._query(QUEUE_INDEX, "state", JobState.RUNNING.value)

    def active_for(self, tenant: str, name: str) -> Job | None:
        """The dataset's running job, else its first queued one, else None."""
        active = self._query(
            DATASET_INDEX, "dataset", f"{tenant}/{name}",
            FilterExpression="#s IN (:queued, :running)",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":queued": {"S": JobState.QUEUED.value},
                                       ":running": {"S": JobState.RUNNING.value}},
        )
        # The key joins tenant and name with "/"; checking both keeps a tenant containing "/" apart.
        active = [j for j in active if j.tenant == tenant and j.name == name]
        running = [j for j in active if j.state == JobState.RUNNING.value]
        return (running or active or [None])[0]

    def _query(self, index: str, attribute: str, value: str, **extra: Any) -> list[Job]:
        names = {"#k": attribute, **extra.pop("ExpressionAttributeNames", {})}
        values = {":k": {"S": value}, **extra.pop("ExpressionAttributeValues", {})}
        jobs: list[Job] = []
        with aws_errors("query", f"{index}/{value}"):
            pages = self._dynamodb().get_paginator("query").paginate(
                TableName=self._table, IndexName=index, KeyConditionExpression="#k = :k",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values, **extra,
            )
            for page in pages:
                jobs.extend(_job(item) for item in page.get("Items", []))
        return sorted(jobs, key=lambda j: (j.enqueued_at, j.job_id))

    def claim(self, job_id: str, trainer: str, now: float) -> bool:
        """QUEUED -> RUNNING for ``trainer``; False if the job is missing or no longer queued."""
        with aws_errors("claim", job_id):
            return _conditional(
                self._dynamodb(), TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :running, #t = :trainer, #at = :now",
                ConditionExpression="#s = :queued",
                ExpressionAttributeNames={"#s": "state", "#t": "trainer", "#at": "started_at"},
                ExpressionAttributeValues={
                    ":running": _value(JobState.RUNNING.value), ":trainer": _value(trainer),
                    ":now": _value(float(now)), ":queued": _value(JobState.QUEUED.value),
                },
            )

    def finish(self, job_id: str, state: JobState, now: float, *, error: str | None = None,
               model_version: int | None = None) -> bool:
        """QUEUED/RUNNING -> ``state`` (SUCCEEDED or FAILED); False if missing or finished."""
        state = JobState(state)
        if state not in _FINAL_STATES:
            raise ValueError(f"finish needs a final state, not {state.value!r}")
        with aws_errors("finish", job_id):
            return _conditional(
                self._dynamodb(), TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :state, #at = :now, #e = :error, #v = :version",
                ConditionExpression="#s IN (:queued, :running)",
                ExpressionAttributeNames={"#s": "state", "#at": "finished_at", "#e": "error",
                                          "#v": "model_version"},
                ExpressionAttributeValues={
                    ":state": _value(state.value), ":now": _value(float(now)),
                    ":error": _value(error), ":version": _value(model_version),
                    ":queued": _value(JobState.QUEUED.value),
                    ":running": _value(JobState.RUNNING.value),
                },
            )


def _job(item: dict[str, Any]) -> Job:
    data = {k: DESERIALIZER.deserialize(v) for k, v in item.items()}
    return Job.from_dict({k: from_dynamo(v, as_float=k in _JOB_FLOATS) for k, v in data.items()})


class DynamoMachineLock:
    """MachineLock over the `MachineStatus` table keyed by name: conditional updates, a lease."""

    _NAMES = {"#n": "name", "#s": "State", "#o": "owner", "#l": "lease_expires_at"}

    def __init__(self, *, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._dynamodb = LazyClient("dynamodb", client)

    def _update(self, operation: str, machine: str, **request: Any) -> bool:
        used = " ".join(str(v) for v in request.values())  # DynamoDB rejects unused names
        names = {k: v for k, v in self._NAMES.items() if k in used}
        with aws_errors(operation, machine):
            return _conditional(
                self._dynamodb(), TableName=self._table, Key={"name": {"S": machine}},
                ExpressionAttributeNames=names, **request,
            )

    def acquire(self, machine: str, owner: str, lease_s: float, now: float) -> bool:
        """Busy for ``owner`` until now + lease_s if absent, Free, or expired before now."""
        # A row without a lease (written before leases existed) counts as expired.
        return self._update(
            "acquire", machine,
            UpdateExpression="SET #s = :busy, #o = :owner, #l = :until",
            ConditionExpression="attribute_not_exists(#n) OR #s = :free OR #l < :now "
                                "OR attribute_not_exists(#l)",
            ExpressionAttributeValues={":busy": _value("Busy"), ":free": _value("Free"),
                                       ":owner": _value(owner), ":now": _value(float(now)),
                                       ":until": _value(float(now + lease_s))},
        )

    def heartbeat(self, machine: str, owner: str, lease_s: float, now: float) -> bool:
        """Extend the lease to now + lease_s while ``owner`` holds an unexpired lease."""
        return self._update(
            "heartbeat", machine,
            UpdateExpression="SET #l = :until",
            ConditionExpression="#s = :busy AND #o = :owner AND #l >= :now",
            ExpressionAttributeValues={":busy": _value("Busy"), ":owner": _value(owner),
                                       ":now": _value(float(now)),
                                       ":until": _value(float(now + lease_s))},
        )

    def release(self, machine: str, owner: str) -> bool:
        """Free the machine if ``owner`` holds it (even past its lease); never another's."""
        return self._update(
            "release", machine,
            UpdateExpression="SET #s = :free, #l = :zero REMOVE #o",
            ConditionExpression="#s = :busy AND #o = :owner",
            ExpressionAttributeValues={":busy": _value("Busy"), ":free": _value("Free"),
                                       ":owner": _value(owner), ":zero": _value(0.0)},
        )

    def get(self, machine: str) -> MachineStatus | None:
        """A strongly consistent read of the machine's row, or None."""
        with aws_errors("get", machine):
            response = self._dynamodb().get_item(
                TableName=self._table, Key={"name": {"S": machine}}, ConsistentRead=True
            )
        item = response.get("Item")
        if not item:
            return None
        data = {k: DESERIALIZER.deserialize(v) for k, v in item.items()}
        return MachineStatus(
            name=data["name"], State=str(data.get("State", "Free")), owner=data.get("owner"),
            lease_expires_at=float(data.get("lease_expires_at") or 0),
        )
