"""Use-case fixtures: the same Services over the local backend and over AWS on moto."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from moto import mock_aws

from bot.wiring import build_services
from handlers.services import Services
from platform_core.config import Settings
from tests import infra


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
