"""The runner on the AWS adapters (moto): S3, DynamoDB tables and the SQS training queue from template.yaml, SNS
to an SQS queue, and two trainer threads racing over one machine's lock."""
from __future__ import annotations

import json
import threading
import time

import pytest
from moto import mock_aws

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from platform_core.adapters.aws import make_boto3_client
from platform_core.config import Settings
from platform_core.events import FINISHED, PROGRESS, TrainingEvent
from platform_core.jobs import ReplyTo
from platform_core.records import TrainingStatus
from tests import infra
from tests.fakes import FakeTrainer
from tests.integration.test_trainer_runner import _zip
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:TAWS"


@pytest.fixture
def aws_world(aws_credentials, atomic_moto_writes):
    with mock_aws():
        base = Settings(backend="aws", bucket="mlbot-runner-test", region="us-east-1")
        dynamodb, s3, sns, sqs = (make_boto3_client(s, base) for s in ("dynamodb", "s3", "sns", "sqs"))
        infra.create_storage(dynamodb, s3, bucket=base.bucket)
        topic = sns.create_topic(Name="mlbot-events")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        settings = Settings(backend="aws", bucket=base.bucket, region="us-east-1", topic_arn=topic,
                            machine_id="i-0abc", **infra.queue_settings(infra.create_queues(sqs)))
        trainer = FakeTrainer()
        services = build_services(settings, launcher=lambda job: None)
        for name in ("a", "b", "c"):
            assert dispatch(Command("upload", TENANT, "u", (name,), Attachment("z.zip", _zip())), services).ok
        yield settings, services, trainer, sqs, queue_url


def _events(sqs, queue_url) -> list[TrainingEvent]:
    out = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return out
        out += [TrainingEvent.from_json(m["Body"]) for m in batch]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])


def test_jobs_train_once_each_with_two_trainer_threads_racing_for_the_lock(aws_world) -> None:
    settings, services, trainer, sqs, queue_url = aws_world
    for name in ("a", "b", "c"):
        assert dispatch(Command("train", TENANT, "u", (name,)), services, reply_to=ReplyTo("slack", "C1")).ok
    contexts = [build_trainer_context(settings, trainers={"image": trainer, "sentiment": trainer})
                for _ in range(2)]
    barrier = threading.Barrier(2)

    def worker(ctx) -> None:
        barrier.wait()
        while services.jobs.queued() or services.jobs.running():
            if not drain(ctx):
                time.sleep(0.02)  # the other trainer holds the machine

    threads = [threading.Thread(target=worker, args=(ctx,)) for ctx in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(trainer.calls) == 3
    for name in ("a", "b", "c"):
        record = services.records.get(TENANT, name)
        assert record.training_status == TrainingStatus.SUCCESSFUL.value and record.model_version == 1
    events = _events(sqs, queue_url)
    assert sorted(e.name for e in events if e.type == FINISHED) == ["a", "b", "c"]
    assert sum(e.type == PROGRESS for e in events) == 9
    assert all(e.reply_to == ReplyTo("slack", "C1") for e in events)
    lock_row = contexts[0].lock.get("i-0abc")
    assert lock_row.State == "Free"
    assert "token" not in json.dumps([e.payload for e in events]).lower()
