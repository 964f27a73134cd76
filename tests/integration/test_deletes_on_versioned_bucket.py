"""`delete NAME` and `forget NAME` on AWS leave no version behind in the versioned bucket (moto): what the
reply says is gone is gone, not hidden behind a delete marker and billed for ever."""
from __future__ import annotations

from typing import Iterator

import pytest
from moto import mock_aws

from bot.wiring import build_services
from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from lambda_predict.handler import InProcessPredictions
from lambda_predict.predictor import Predictor
from platform_core.adapters.aws import S3BlobStore, make_boto3_client
from platform_core.config import Settings
from platform_core.adapters.local_events import LocalEventBus
from tests import infra
from tests.fakes import FakeTrainer, png
from tests.integration.test_trainer_runner import _zip
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:TDEL"
BUCKET = "mlbot-versioned"


class World:
    def __init__(self) -> None:
        self.settings = infra.deploy(Settings(backend="aws", bucket=BUCKET, region="us-east-1"))
        self.s3 = make_boto3_client("s3", self.settings)
        assert self.s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"  # as the template has it
        trainer = FakeTrainer(["red", "green", "blue"])
        self.ctx = build_trainer_context(self.settings, events=LocalEventBus(),
                                         trainers={"image": trainer, "sentiment": trainer})
        self.services = build_services(self.settings, launcher=lambda job: None)
        self.services.predictor = InProcessPredictions(Predictor(blobs=self.ctx.blobs, records=self.ctx.records),
                                                       self.ctx.blobs)

    def say(self, text: str, attachment: Attachment | None = None):
        words = text.split()
        return dispatch(Command(words[0], TENANT, "u", tuple(words[1:]), attachment), self.services)

    def versions(self, prefix: str = "") -> list[tuple[str, str]]:
        """Every stored version and delete marker under ``prefix``: (key, version id)."""
        found = []
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=prefix):
            found += [(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        return found


@pytest.fixture
def world(aws_credentials, atomic_moto_writes) -> Iterator[World]:
    with mock_aws():
        built = World()
        assert built.say("upload colours", Attachment("c.zip", _zip())).ok
        assert built.say("train colours").ok
        assert drain(built.ctx) == 1
        yield built


def test_delete_leaves_no_version_of_the_dataset_its_models_or_kept_inputs(world: World) -> None:
    assert world.say("predict colours", Attachment("r.png", png((250, 5, 5)))).ok  # a kept input
    record = world.services.records.get(TENANT, "colours")
    world.services.blobs.put(record.dataset_path, b"overwritten")  # a second version of the same key
    before = world.versions()
    assert len([k for k, _ in before if k == record.dataset_path]) == 2
    assert any(k.startswith("models/") for k, _ in before) and any(k.startswith("feedback-pending/") for k, _ in before)
    done = world.say("delete colours confirm")
    assert done.ok and "no copy is kept" in done.text
    assert world.versions() == []  # not one version or delete marker left under any prefix


def test_forget_leaves_no_version_of_the_kept_inputs(world: World) -> None:
    ids = [world.say("predict colours", Attachment("r.png", png((250, 5, 5)))).data["prediction_id"] for _ in range(2)]
    assert world.say(f"feedback colours {ids[0]} green").ok  # one pending input becomes a candidate (moved)
    assert world.versions("feedback")  # a put and a delete leave versions and a marker on a versioned bucket
    reply = world.say("forget colours")
    assert reply.ok and reply.data["forgotten"] == 2 and "no copy is kept" in reply.text
    assert world.versions("feedback-pending/") == [] and world.versions("feedback/") == []
    assert world.versions("models/")  # the model is untouched


def test_a_blob_delete_removes_every_version_and_marker_of_that_key_only(aws_credentials) -> None:
    with mock_aws():
        s3 = make_boto3_client("s3", Settings(region="us-east-1"))
        infra.create_bucket(s3, BUCKET)
        blobs = S3BlobStore(bucket=BUCKET, client=s3)
        for data in (b"1", b"2", b"3"):
            blobs.put("datasets/t/a/v1.zip", data)
        blobs.put("datasets/t/a/v1.zip.keep", b"neighbour")  # shares the prefix, must survive
        s3.delete_object(Bucket=BUCKET, Key="datasets/t/a/v1.zip")  # a delete marker on top
        blobs.delete("datasets/t/a/v1.zip")
        keys = [v["Key"] for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET)
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        assert keys == ["datasets/t/a/v1.zip.keep"]
        blobs.delete("datasets/t/missing")  # a missing key is not an error
