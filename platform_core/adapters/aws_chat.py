"""AWS adapter for the chat side: the notification log (a map on the job's item in the Job table). Webhook
idempotency keys are Powertools' (platform_core.adapters.aws_idempotency), in their own table with TTL."""
from __future__ import annotations

from typing import Any

# aws.py stays the one module importing boto3; its plumbing is shared rather than copied.
from platform_core.adapters.aws import DESERIALIZER, aws_errors, from_dynamo, LazyClient
from platform_core.adapters.aws_jobs import _value


class DynamoNotificationLog:
    """NotificationLog as a ``notifications`` map on the job's own item in the Job table."""

    def __init__(self, *, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._dynamodb = LazyClient("dynamodb", client)

    def get(self, job_id: str) -> dict:
        with aws_errors("get", job_id):
            item = self._dynamodb().get_item(TableName=self._table, Key={"job_id": {"S": job_id}},
                                              ConsistentRead=True, ProjectionExpression="notifications").get("Item")
        notes = (item or {}).get("notifications")
        return from_dynamo(DESERIALIZER.deserialize(notes)) if notes else {}

    def update(self, job_id: str, **fields) -> dict:
        if not fields:
            return self.get(job_id)
        key = {"job_id": {"S": job_id}}
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": _value(value) for i, value in enumerate(fields.values())}
        with aws_errors("update", job_id):
            dynamodb = self._with_notes(key)
            response = dynamodb.update_item(
                TableName=self._table, Key=key, ReturnValues="ALL_NEW",
                UpdateExpression="SET " + ", ".join(f"notifications.{n} = {v}" for n, v in zip(names, values)),
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        return from_dynamo(DESERIALIZER.deserialize(response["Attributes"]["notifications"]))

    def _with_notes(self, key: dict) -> Any:
        """The client, once the item has a ``notifications`` map (DynamoDB sets no path inside a missing map)."""
        dynamodb = self._dynamodb()
        dynamodb.update_item(TableName=self._table, Key=key,
                             UpdateExpression="SET notifications = if_not_exists(notifications, :empty)",
                             ExpressionAttributeValues={":empty": {"M": {}}})
        return dynamodb

    def add(self, job_id: str, field: str, value: Any) -> bool:
        key = {"job_id": {"S": job_id}}
        with aws_errors("add", job_id):
            dynamodb = self._with_notes(key)
            try:
                dynamodb.update_item(TableName=self._table, Key=key,
                                     UpdateExpression="SET notifications.#f = :v",
                                     ConditionExpression="attribute_not_exists(notifications.#f)",
                                     ExpressionAttributeNames={"#f": field},
                                     ExpressionAttributeValues={":v": _value(value)})
            except dynamodb.exceptions.ConditionalCheckFailedException:
                return False
        return True


class DynamoRateLimiter:
    """Fixed-window request counts as items of the Idempotency table (``rate#<key>#<window>``, TTL
    ``expires_at``): one conditional ADD per request, so racing requests never both take the last slot."""

    def __init__(self, *, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._dynamodb = LazyClient("dynamodb", client)

    def allow(self, key: str, limit: int, window_s: int, now: float) -> float:
        window = int(now // window_s)
        item = f"rate#{key}#{window}"
        with aws_errors("allow", key):
            dynamodb = self._dynamodb()
            try:
                dynamodb.update_item(
                    TableName=self._table, Key={"key": {"S": item}},
                    UpdateExpression="ADD #n :one SET expires_at = if_not_exists(expires_at, :expires)",
                    ConditionExpression="attribute_not_exists(#n) OR #n < :limit",
                    ExpressionAttributeNames={"#n": "count"},
                    ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(limit)},
                                               ":expires": {"N": str((window + 2) * window_s)}})
            except dynamodb.exceptions.ConditionalCheckFailedException:
                return (window + 1) * window_s - now
        return 0.0
