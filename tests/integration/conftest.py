"""Use-case fixtures: the same Services over the local backend and over AWS on moto."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from moto import mock_aws

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from handlers.services import Services
from platform_core.config import Settings
from tests import infra
from tools import realdata
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context


@pytest.fixture(params=["local", "aws"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Services built by the real wiring function, on each backend."""
    if request.param == "local":
        yield build_services(Settings(backend="local", home=tmp_path / "home"))
        return
    request.getfixturevalue("aws_credentials")
    request.getfixturevalue("atomic_moto_writes")
    with mock_aws():
        settings = Settings(backend="aws", bucket="mlbot-it-datasets", region="us-east-1")
        built = build_services(settings)
        from platform_core.adapters.aws import make_boto3_client

        names = infra.create_storage(make_boto3_client("dynamodb", settings), make_boto3_client("s3", settings),
                                     bucket=settings.bucket)
        assert names["DatasetTable"] == settings.dataset_table
        yield built


TRAINED_TENANT = "console:tester"


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory, fashion_mnist, vader_reviews) -> Path:
    """One image and one sentiment dataset, uploaded and trained with the default recipes."""
    home = tmp_path_factory.mktemp("predict-real") / "home"
    settings = Settings(backend="local", home=home)
    services = build_services(settings, launcher=lambda job: None)
    uploads = {"clothes.zip": realdata.build_image_zip(["trouser", "sneaker", "bag"], 20),
               "reviews.csv": realdata.build_sentiment_csv(100)}
    for filename, data in uploads.items():
        name = filename.split(".")[0]
        assert dispatch(Command("upload", TRAINED_TENANT, "u", (name,), Attachment(filename, data)), services).ok
        assert dispatch(Command("train", TRAINED_TENANT, "u", (name,)), services).ok
    assert drain(build_trainer_context(settings)) == 2
    return home
