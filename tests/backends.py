"""The backends a use-case test can run on: the in-memory fakes by default, and SQLite and moto for the
tests that are about what the adapters do (conditional writes racing, a store failing half-way).

``@on_every_backend`` runs a test that takes the ``services`` fixture (tests/integration/conftest.py) on
all three; without it the fixture gives the fakes."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
from moto import mock_aws

from bot.wiring import build_services
from handlers.services import Services
from platform_core.backend import Backend, backend_for
from platform_core.config import Settings
from tests import infra
from tests.memory import MemoryBackend, memory_services

EVERY_BACKEND = ("memory", "local", "aws")
on_every_backend = pytest.mark.parametrize("services", EVERY_BACKEND, indirect=True)


def services_on(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Services built by the real wiring function over one backend, for as long as the generator runs."""
    if kind == "memory":
        yield memory_services(MemoryBackend())
        return
    if kind == "local":
        yield build_services(Settings(backend="local", home=tmp_path / "home"))
        return
    request.getfixturevalue("aws_credentials")
    request.getfixturevalue("atomic_moto_writes")
    with mock_aws():
        from platform_core.adapters.aws import make_boto3_client

        plain = Settings(backend="aws", bucket="mlbot-it-datasets", region="us-east-1")
        urls = infra.create_queues(make_boto3_client("sqs", plain))
        settings = replace(plain, **infra.queue_settings(urls))
        built = build_services(settings)
        names = infra.create_storage(make_boto3_client("dynamodb", settings), make_boto3_client("s3", settings),
                                     bucket=settings.bucket)
        assert names["DatasetTable"] == settings.dataset_table
        yield built


def contract_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The adapters a contract suite runs against, built as the deployables build them (platform_core.backend):
    the fakes, SQLite under ``tmp_path``, or DynamoDB under moto with the template's tables."""
    if kind == "memory":
        yield MemoryBackend()
        return
    if kind == "local":
        yield backend_for(Settings(backend="local", home=tmp_path / "home"))
        return
    request.getfixturevalue("aws_credentials")
    request.getfixturevalue("atomic_moto_writes")
    with mock_aws():
        plain = backend_for(Settings(backend="aws", bucket="mlbot-contract", region="us-east-1"))
        urls = infra.create_queues(plain.client("sqs"))
        backend = backend_for(replace(plain.settings, **infra.queue_settings(urls)))
        infra.create_tables(backend.client("dynamodb"))
        yield backend
