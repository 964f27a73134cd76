"""The events port on AWS: training events published to the SNS topic the notifier Lambda subscribes to."""
from __future__ import annotations

from typing import Any

# aws.py stays the one module importing boto3; its plumbing is shared rather than copied.
from platform_core.adapters.aws import aws_errors, LazyClient
from platform_core.events import TrainingEvent


class SnsEventBus:
    """EventBus that publishes each event's JSON to one SNS topic, typed by a message attribute."""

    def __init__(self, *, topic_arn: str, client: Any = None) -> None:
        self._topic_arn = topic_arn
        self._sns = LazyClient("sns", client)

    def publish(self, event: TrainingEvent) -> None:
        """Publish ``event.to_json()`` with a ``type`` attribute; failures raise StorageError."""
        with aws_errors("publish", self._topic_arn):
            self._sns().publish(
                TopicArn=self._topic_arn,
                Message=event.to_json(),
                MessageAttributes={"type": {"DataType": "String", "StringValue": event.type}},
            )

