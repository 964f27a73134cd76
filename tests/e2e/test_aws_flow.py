"""One real run of the AWS deployment, with AWS played by the moto server over HTTP.

A signed Slack upload reaches the Slack bot's Lambda entry (called as a function; Bolt's lazy
self-invocations played back as Lambda would), the dataset lands in S3 and DynamoDB (moto, tables and
training queues from template.yaml). `/ml train` stores the job, sends one SQS message and raises the
trainer group's desired capacity (moto's Auto Scaling); the instance the group launches "boots" the real
trainer (its Worker long-polling the moto queue, its app answering /health on localhost, the launch hook
completed by trainer_ec2.boot), which trains for real on a tiny Fashion-MNIST set and deletes the message.
Its events go through SNS (to an SQS queue standing in for the notifier's subscription) to the notifier
Lambda, whose messages arrive at the fake Slack API; then an image shared with `predict` is answered by
the inference Lambda.
"""
from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from bot import notifier
from bot.slack.lambda_entry import build_handler
from bot.slack.sender import web_client
from bot.wiring import build_services
from lambda_predict import handler as predict_lambda
from platform_core.adapters.aws import make_boto3_client
from platform_core.adapters.aws_predict import LambdaPredictions
from platform_core.config import Settings
from platform_core.events import FAILED, FINISHED
from tests import infra
from tests.fake_slack import BOT_TOKEN, FakeSlack
from tests.integration.test_slack import EVENTS, SECRET, FakeLambda, LambdaContext, sign, gateway_event
from tests.serving import serve_in_thread
from tools import realdata
from trainer_ec2.app import create_app
from trainer_ec2.boot import ready, wait_healthy
from trainer_ec2.runner import Worker
from trainer_ec2.wiring import build_trainer_context

pytestmark = pytest.mark.slow
TEAM = "T0001"
TRAINER_TOKEN = "e2e-trainer-token-0123456789abcdef"
GROUP = "mlbot-e2e-trainers"


class Engine:
    """EC2 Auto Scaling's part: every instance the group launches boots the real trainer service on localhost
    (its machine id the instance id) and answers the launch hook through trainer_ec2.boot.ready."""

    def __init__(self, settings: Settings, autoscaling) -> None:
        self.settings, self._autoscaling = settings, autoscaling
        self.booted: dict[str, tuple[Worker, object]] = {}
        self.hook: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            group = self._autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
            for instance in group["AutoScalingGroups"][0].get("Instances", []):
                if instance["InstanceId"] not in self.booted:
                    self._boot(instance["InstanceId"])

    def _boot(self, instance_id: str) -> None:
        ctx = build_trainer_context(replace(self.settings, machine_id=instance_id))
        worker = Worker(ctx, wait_s=1)
        server = make_server("127.0.0.1", 0, create_app(ctx, token=TRAINER_TOKEN, worker=worker), threaded=True)
        self.booted[instance_id] = (worker, server)

        def start() -> None:
            worker.start()
            serve_in_thread(server)
        ready(target_state="InService", start_service=start, complete=self.hook.append,
              healthy=lambda: wait_healthy(f"http://127.0.0.1:{server.server_port}/health", timeout_s=30, poll_s=0.1))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for worker, server in self.booted.values():
            worker.stop(timeout_s=5)
            server.shutdown()


class InvokePredict:
    """The Lambda service for the inference function: runs lambda_predict.handler as Lambda would."""

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict:
        out = predict_lambda.handler(json.loads(Payload), None)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(out).encode())}


@pytest.fixture
def cloud(aws_credentials, atomic_moto_writes, monkeypatch, tmp_path: Path):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    fake = FakeSlack()
    endpoint = f"http://{host}:{port}"
    # moto's state is per process, not per server: start from an empty account
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    base = Settings(backend="aws", bucket="mlbot-e2e", region="us-east-1", aws_endpoint_url=endpoint)
    clients = {s: make_boto3_client(s, base) for s in ("dynamodb", "s3", "sns", "sqs", "ec2", "autoscaling")}
    deployed = infra.deploy(base)
    topic = clients["sns"].create_topic(Name="mlbot-events")["TopicArn"]
    queue = clients["sqs"].create_queue(QueueName="notifier")["QueueUrl"]
    queue_arn = clients["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                             Attributes={"RawMessageDelivery": "true"})
    image = clients["ec2"].describe_images()["Images"][0]["ImageId"]
    clients["ec2"].create_launch_template(LaunchTemplateName="trainer",
                                          LaunchTemplateData={"ImageId": image, "InstanceType": "c7i.xlarge"})
    clients["autoscaling"].create_auto_scaling_group(
        AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateName": "trainer"}, MinSize=0, MaxSize=2,
        DesiredCapacity=0, AvailabilityZones=["us-east-1a"])
    settings = replace(deployed, topic_arn=topic, trainer_groups={"cpu": GROUP}, slack_signing_secret=SECRET,
                       slack_bot_token=BOT_TOKEN, slack_api_url=fake.api_url, predict_function="mlbot-predict")
    for name, value in {"MLBOT_BACKEND": "aws", "MLBOT_BUCKET": base.bucket, "AWS_ENDPOINT_URL": endpoint,
                        "AWS_REGION": "us-east-1"}.items():  # what the deployed inference Lambda reads
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(predict_lambda, "_runtime", None)
    engine = Engine(settings, clients["autoscaling"])
    try:
        yield settings, clients, queue, fake, engine
    finally:
        engine.close()
        fake.close()
        server.stop()


def _group(clients) -> dict:
    return clients["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]


def test_upload_train_notify_and_predict_through_the_aws_deployment(cloud, fashion_mnist) -> None:
    settings, clients, queue, fake, engine = cloud
    services = build_services(settings)  # the deployed wiring: the trainer group's scale-out
    services.predictor = LambdaPredictions(function="mlbot-predict", blobs=services.blobs, client=InvokePredict())
    lazy = FakeLambda()
    slack = build_handler(settings, services, client=web_client(settings), lambda_client=lazy)

    def post(body: str, content_type: str) -> None:
        answer = slack.handle(gateway_event(body, {"Content-Type": content_type, **sign(body)}), LambdaContext())
        assert answer["statusCode"] == 200, answer
        while lazy.pending:
            assert slack.handle(lazy.pending.pop(0), LambdaContext())["statusCode"] == 200

    def share(text: str, file_id: str, name: str, data: bytes) -> None:
        event = json.loads((EVENTS / "slack_event_file_share.json").read_text())
        event["event_id"] = f"Ev{file_id}"
        event["event"].update(text=text, files=[fake.add_file(file_id, name, data)])
        post(json.dumps(event), "application/json")

    share("upload clothes two kinds", "F1", "clothes.zip", realdata.build_image_zip(["trouser", "bag"], 10))
    record = services.records.get(f"slack:{TEAM}", "clothes")
    assert record is not None and clients["s3"].head_object(Bucket=settings.bucket, Key=record.dataset_path)
    assert fake.posted()[-1].startswith("Stored image dataset 'clothes'")

    command = (EVENTS / "slack_slash_command.txt").read_text().strip()
    post(command.replace("text=help", "text=train+clothes").replace(
        "https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678", fake.response_url("train")),
        "application/x-www-form-urlencoded")
    asked = time.monotonic()
    assert "Queued 'clothes' for training" in fake.responses[-1]["text"]
    assert _group(clients)["DesiredCapacity"] == 1  # the group was asked for a trainer at once

    delivered, final, first_progress = 0, None, None
    deadline = time.monotonic() + 240
    while final is None and time.monotonic() < deadline:  # the notifier Lambda, fed as SNS would feed it
        messages = clients["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in messages.get("Messages", []):
            clients["sqs"].delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            sns_event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": message["Body"]}}]}
            delivered += notifier.notify_records(sns_event, notifier.build_notifier(settings))
            kind = json.loads(message["Body"])["type"]
            if first_progress is None:
                first_progress = time.monotonic() - asked
            if kind in (FINISHED, FAILED):
                final = kind
    assert final == FINISHED, fake.posted()[-3:]
    print(f"train -> first progress message, trainer in service: {first_progress:.1f} s")
    (instance,) = engine.booted
    assert engine.hook == ["CONTINUE"]  # the launch hook was completed once /health answered
    job = services.jobs.get(services.records.get(f"slack:{TEAM}", "clothes").last_job_id)
    assert (job.state, job.trainer, job.attempts) == ("succeeded", instance, 1)
    depth = clients["sqs"].get_queue_attributes(QueueUrl=settings.queue_urls["cpu"], AttributeNames=["All"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "0"  # the message was deleted
    assert depth["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert services.jobs.running() == [] and engine.booted[instance][0].ctx.lock.get(instance).State == "Free"
    assert delivered >= 3  # progress, ..., finished
    summary = [t for t in fake.posted() if t.startswith("Training 'clothes' finished")]
    assert len(summary) == 1 and fake.uploads[-1].startswith(b"\x89PNG")
    assert services.records.get(f"slack:{TEAM}", "clothes").training_status == "Training Successful"

    trouser = realdata.sample_images(["trouser"], 1, seed=7)["trouser"][0]
    photo = io.BytesIO()
    from PIL import Image

    Image.fromarray(trouser).resize((96, 96)).save(photo, "PNG")
    share("predict clothes", "F2", "trouser.png", photo.getvalue())
    assert fake.posted()[-1].startswith("trouser ("), fake.posted()[-1]


def test_telegram_upload_train_and_notify_through_the_aws_backend(cloud, fashion_mnist, monkeypatch) -> None:
    """The Telegram leg: the webhook on the AWS adapters (updates deduplicated in the Idempotency table),
    a trainer launched by the group on demand, the notification through SNS to the notifier, at a fake Bot API."""
    from dataclasses import replace as with_fields

    from bot.telegram.sender import TelegramSender
    from bot.telegram.webhook import TelegramChannel, handle_webhook
    from platform_core.backend import backend_for
    from tests.fake_telegram import FakeTelegram
    from tests.integration.test_telegram import SECRET as HOOK, TOKEN, command, update

    base, clients, queue, _, engine = cloud
    with FakeTelegram(TOKEN) as bot_api:
        settings = with_fields(base, telegram_bot_token=TOKEN, telegram_webhook_secret=HOOK,
                               telegram_api_url=bot_api.api_url, telegram_file_url=bot_api.file_url)
        sender = TelegramSender(settings)
        channel = TelegramChannel(build_services(settings), backend_for(settings).idempotency, sender, settings)

        def post(data: dict) -> None:
            body = json.dumps(data).encode()
            assert handle_webhook({"X-Telegram-Bot-Api-Secret-Token": HOOK}, body, channel) == (200, {"ok": True})

        archive = realdata.build_image_zip(["sneaker", "bag"], 10)
        doc = update("document_upload", caption="/upload shoes")
        doc["message"]["document"].update(file_id="shoes-zip", file_size=len(archive))
        bot_api.add_file("shoes-zip", archive)
        post(doc)
        post(doc)  # Telegram redelivers: the Idempotency table (moto) makes it a no-op
        assert [c.params["text"] for c in bot_api.sent("sendMessage")][-1].startswith("Stored image dataset 'shoes'")
        assert len(bot_api.sent("sendMessage")) == 1
        post(command("/train shoes"))
        final = None
        deadline = time.monotonic() + 240
        notifier_settings = with_fields(settings, slack_bot_token="")
        while final is None and time.monotonic() < deadline:
            messages = clients["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in messages.get("Messages", []):
                clients["sqs"].delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                notifier.notify_records({"Records": [{"Sns": {"Message": message["Body"]}}]},
                                        notifier.build_notifier(notifier_settings))
                if json.loads(message["Body"])["type"] in (FINISHED, FAILED):
                    final = json.loads(message["Body"])["type"]
        sender.close()
    assert final == FINISHED
    texts = bot_api.texts()
    assert any(t.startswith("Training 'shoes' finished: validation accuracy") for t in texts)
    assert bot_api.sent("sendPhoto")  # the confusion matrix
