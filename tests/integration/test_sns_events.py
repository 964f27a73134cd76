"""SnsEventBus on moto: events reach an SQS queue intact and typed; failures are StorageError."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from moto import mock_aws

from platform_core.adapters.aws import make_boto3_client
from platform_core.adapters.aws_events import SnsEventBus
from platform_core.config import Settings
from platform_core.errors import StorageError
from platform_core.events import FAILED, FINISHED, PROGRESS, TrainingEvent
from platform_core.jobs import ReplyTo
from tests import infra

SETTINGS = Settings(backend="aws", region="us-east-1")


class Subscribed:
    """The template's topic with one SQS queue subscribed to it."""

    def __init__(self, sns: Any, sqs: Any, **subscription: Any) -> None:
        self.sqs = sqs
        logical_id = "TrainingEventsTopic"
        assert logical_id in infra.resources_of_type(infra.load_template(), "AWS::SNS::Topic")
        self.topic_arn = sns.create_topic(Name=logical_id)["TopicArn"]
        self.queue_url = sqs.create_queue(QueueName="notifier")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn, **subscription)

    def bodies(self) -> list[dict[str, Any]]:
        """Every SNS envelope delivered so far, in order, taken off the queue."""
        found: list[dict[str, Any]] = []
        while True:
            response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = response.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        yield make_boto3_client("sns", SETTINGS), make_boto3_client("sqs", SETTINGS)


def event(kind: str = FINISHED, **payload: Any) -> TrainingEvent:
    return TrainingEvent(
        type=kind, job_id="job-1", tenant="telegram:-100200", name="digits",
        reply_to=ReplyTo("telegram", "-100200", answering="7"),
        payload=payload or {"validation_accuracy": 0.93, "classes": ["cat", "dög"], "epoch": None},
    )


def test_a_published_event_reaches_the_subscriber_and_round_trips(aws: tuple[Any, Any]) -> None:
    sns, sqs = aws
    queue = Subscribed(sns, sqs)
    sent = event()
    SnsEventBus(topic_arn=queue.topic_arn, client=sns).publish(sent)
    (body,) = queue.bodies()
    assert body["TopicArn"] == queue.topic_arn
    assert TrainingEvent.from_json(body["Message"]) == sent
    assert body["MessageAttributes"]["type"] == {"Type": "String", "Value": FINISHED}


def test_events_arrive_in_publish_order_each_with_its_type(aws: tuple[Any, Any]) -> None:
    sns, sqs = aws
    queue = Subscribed(sns, sqs, Attributes={"RawMessageDelivery": "true"})
    bus = SnsEventBus(topic_arn=queue.topic_arn, client=sns)
    sent = [event(PROGRESS, epoch=1, of=3), event(PROGRESS, epoch=2, of=3),
            event(FAILED, reason="out of memory")]
    for item in sent:
        bus.publish(item)
    received = queue.sqs.receive_message(
        QueueUrl=queue.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert [TrainingEvent.from_json(m["Body"]) for m in received] == sent
    assert [m["MessageAttributes"]["type"]["StringValue"] for m in received] == [
        PROGRESS, PROGRESS, FAILED]


def test_a_filter_policy_on_the_type_attribute_selects_events(aws: tuple[Any, Any]) -> None:
    sns, sqs = aws
    queue = Subscribed(sns, sqs, Attributes={"FilterPolicy": json.dumps({"type": [FINISHED]})})
    bus = SnsEventBus(topic_arn=queue.topic_arn, client=sns)
    bus.publish(event(PROGRESS, epoch=1))
    bus.publish(event(FINISHED))
    assert [TrainingEvent.from_json(b["Message"]).type for b in queue.bodies()] == [FINISHED]


def test_publishing_to_a_missing_topic_raises_storage_error(aws: tuple[Any, Any]) -> None:
    sns, _ = aws
    missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    with pytest.raises(StorageError) as caught:
        SnsEventBus(topic_arn=missing, client=sns).publish(event())
    assert caught.value.operation == "publish" and caught.value.key == missing
    assert caught.value.cause == "NotFound"


def test_the_bus_builds_its_client_on_first_use_not_at_construction(
    aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # building a client now would fail: no region
    bus = SnsEventBus(topic_arn="arn:aws:sns:us-east-1:123456789012:TrainingEventsTopic")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        sns, sqs = make_boto3_client("sns", SETTINGS), make_boto3_client("sqs", SETTINGS)
        queue = Subscribed(sns, sqs)
        assert queue.topic_arn == "arn:aws:sns:us-east-1:123456789012:TrainingEventsTopic"
        bus.publish(event())
        assert len(queue.bodies()) == 1
