"""AWS adapter for the Job table (DynamoDB); the `MachineStatus` lock is in aws_machines, the training queue in
aws_queue (SQS), events in aws_events.

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
from platform_core.jobs import Job, JobState

ACTIVE_INDEX = "ActiveIndex"  # sparse: HASH active_state (only while queued or running), RANGE enqueued_at
DATASET_INDEX = "DatasetIndex"  # HASH dataset (tenant + "/" + name), RANGE enqueued_at
ACTIVE = "active_state"
TURN = "turn#"  # the key prefix of a tenant's turn item: its last claim time, for the fair order
_JOB_FLOATS = frozenset({"enqueued_at", "started_at", "finished_at", "lease_expires_at"})
_FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED)
KEEP_FINISHED_S = 90 * 24 * 3600  # a finished job's record expires (the table's TTL on expires_at)


def _value(value: Any) -> dict[str, Any]:
    """One attribute value in DynamoDB's wire format; floats go through Decimal."""
    return SERIALIZER.serialize(to_dynamo(value))


def _conditional(dynamodb: Any, **request: Any) -> bool:
    """Run one conditional update_item; False when DynamoDB refused the condition."""
    return _updated(dynamodb, **request) is not None


def _updated(dynamodb: Any, **request: Any) -> dict[str, Any] | None:
    """Run one conditional update_item; the item's attributes it returned ({} unless asked), or None when
    DynamoDB refused the condition."""
    try:
        return dynamodb.update_item(**request).get("Attributes", {})
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return None


class DynamoJobQueue:
    """JobQueue over a table keyed by job_id. Active jobs carry ``active_state`` (their state), the key of a
    sparse index that holds only queued and running jobs; finished jobs drop it and expire after 90 days.

    Queries on an index are eventually consistent, so queued(), running() and active_for() may lag a write
    by a moment; claim(), heartbeat() and finish() are conditional writes on the table and never do."""

    def __init__(self, *, table_name: str, client: Any = None, clock=time.time) -> None:
        self._table = table_name
        self._dynamodb = LazyClient("dynamodb", client)
        self._clock = clock

    def submit(self, job: Job) -> Job:
        """Put the job only if its job_id is new; otherwise return the stored job unchanged."""
        if not job.enqueued_at:
            job = replace(job, enqueued_at=self._clock())
        item = {k: _value(v) for k, v in job.as_dict().items()}
        state = JobState(job.state).value
        item["state"] = _value(state)
        item["dataset"] = _value(f"{job.tenant}/{job.name}")
        if state in (JobState.QUEUED.value, JobState.RUNNING.value):
            item[ACTIVE] = _value(state)
        with aws_errors("submit", job.job_id):
            dynamodb = self._dynamodb()
            try:
                dynamodb.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(#id)",
                                  ExpressionAttributeNames={"#id": "job_id"})
            except dynamodb.exceptions.ConditionalCheckFailedException:
                stored = self.get(job.job_id)
                if stored is not None:
                    return stored
                raise
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
        return self._query(ACTIVE_INDEX, ACTIVE, JobState.QUEUED.value)

    def running(self) -> list[Job]:
        """Running jobs by (enqueued_at, job_id)."""
        return self._query(ACTIVE_INDEX, ACTIVE, JobState.RUNNING.value)

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

    def claim(self, job_id: str, trainer: str, now: float, lease_s: float) -> bool:
        """QUEUED, or RUNNING with an expired lease -> RUNNING for ``trainer``, one more attempt; then the
        tenant's turn item (``turn#<tenant>``, outside both indexes) records the claim time."""
        with aws_errors("claim", job_id):
            won = _updated(
                self._dynamodb(), TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :running, #a = :running, #t = :trainer, #at = :now, #l = :until "
                                 "ADD #n :one",
                ConditionExpression="#s = :queued OR (#s = :running AND #l < :now)",
                ExpressionAttributeNames={"#s": "state", "#a": ACTIVE, "#t": "trainer", "#at": "started_at",
                                          "#l": "lease_expires_at", "#n": "attempts"},
                ExpressionAttributeValues={
                    ":running": _value(JobState.RUNNING.value), ":trainer": _value(trainer),
                    ":now": _value(float(now)), ":queued": _value(JobState.QUEUED.value),
                    ":until": _value(float(now + lease_s)), ":one": _value(1),
                },
                ReturnValues="ALL_NEW",
            )
        if won is None:
            return False
        self._record_turn(DESERIALIZER.deserialize(won["tenant"]), now)
        return True

    def _record_turn(self, tenant: str, now: float) -> None:
        with aws_errors("claim", f"{TURN}{tenant}"):
            _conditional(
                self._dynamodb(), TableName=self._table, Key={"job_id": {"S": f"{TURN}{tenant}"}},
                UpdateExpression="SET #t = :tenant, #at = :now, #x = :expires",
                ConditionExpression="attribute_not_exists(#at) OR #at < :now",
                ExpressionAttributeNames={"#t": "tenant", "#at": "last_claimed", "#x": "expires_at"},
                ExpressionAttributeValues={":tenant": _value(tenant), ":now": _value(float(now)),
                                           ":expires": _value(int(now + KEEP_FINISHED_S))},
            )

    def served(self, tenants) -> dict[str, float]:
        """Each tenant's last claim time, read in batches of 100 (strongly consistent)."""
        wanted = sorted(set(tenants))
        found: dict[str, float] = {}
        for start in range(0, len(wanted), 100):
            keys = [{"job_id": {"S": f"{TURN}{t}"}} for t in wanted[start:start + 100]]
            request = {self._table: {"Keys": keys, "ConsistentRead": True,
                                     "ProjectionExpression": "tenant, last_claimed"}}
            with aws_errors("served", "tenants"):
                while request:
                    response = self._dynamodb().batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self._table, []):
                        found[DESERIALIZER.deserialize(item["tenant"])] = float(
                            DESERIALIZER.deserialize(item["last_claimed"]))
                    request = response.get("UnprocessedKeys") or {}
        return found

    def heartbeat(self, job_id: str, trainer: str, now: float, lease_s: float) -> bool:
        """Extend ``trainer``'s lease while it holds the running job."""
        with aws_errors("heartbeat", job_id):
            return _conditional(
                self._dynamodb(), TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #l = :until",
                ConditionExpression="#s = :running AND #t = :trainer",
                ExpressionAttributeNames={"#s": "state", "#t": "trainer", "#l": "lease_expires_at"},
                ExpressionAttributeValues={":running": _value(JobState.RUNNING.value), ":trainer": _value(trainer),
                                           ":until": _value(float(now + lease_s))},
            )

    def finish(self, job_id: str, state: JobState, now: float, *, error: str | None = None,
               model_version: int | None = None, trainer: str | None = None) -> bool:
        """QUEUED/RUNNING -> ``state`` (SUCCEEDED or FAILED); False if missing, finished, or (with
        ``trainer``) held by another trainer. The job leaves the active index and expires in 90 days."""
        state = JobState(state)
        if state not in _FINAL_STATES:
            raise ValueError(f"finish needs a final state, not {state.value!r}")
        names = {"#s": "state", "#at": "finished_at", "#e": "error", "#v": "model_version", "#a": ACTIVE,
                 "#x": "expires_at", "#l": "lease_expires_at"}
        values = {":state": _value(state.value), ":now": _value(float(now)), ":error": _value(error),
                  ":version": _value(model_version), ":queued": _value(JobState.QUEUED.value),
                  ":running": _value(JobState.RUNNING.value), ":expires": _value(int(now + KEEP_FINISHED_S)),
                  ":zero": _value(0.0)}
        condition = "#s IN (:queued, :running)"
        if trainer is not None:
            condition += " AND #t = :trainer"
            names["#t"], values[":trainer"] = "trainer", _value(trainer)
        with aws_errors("finish", job_id):
            return _conditional(
                self._dynamodb(), TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :state, #at = :now, #e = :error, #v = :version, #x = :expires, "
                                 "#l = :zero REMOVE #a",
                ConditionExpression=condition, ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            )


def _job(item: dict[str, Any]) -> Job:
    data = {k: DESERIALIZER.deserialize(v) for k, v in item.items()}
    return Job.from_dict({k: from_dynamo(v, as_float=k in _JOB_FLOATS) for k, v in data.items()})
