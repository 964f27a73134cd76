"""AWS adapter for the `MachineStatus` table (DynamoDB): each trainer's row, Busy with the job it trains or
Free, under a lease. Every change is one conditional update, so DynamoDB decides races."""
from __future__ import annotations

from typing import Any

from platform_core.adapters.aws import DESERIALIZER, LazyClient, aws_errors
from platform_core.adapters.aws_jobs import _conditional, _value
from platform_core.jobs import MachineStatus


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
