"""The backends a use-case test can run on: the in-memory fakes by default, and SQLite and moto for the
tests that are about what the adapters do (conditional writes racing, a store failing half-way).

``@on_every_backend`` runs a test that takes the ``services`` fixture (tests/integration/conftest.py) on
all three; without it the fixture gives the fakes."""
from __future__ import annotations

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
    for settings in _moto(request, "mlbot-it-datasets"):
        assert settings.dataset_table == "Dataset"  # the template's tables, named as the settings default
        yield build_services(settings)


def contract_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The adapters a contract suite runs against, built as the deployables build them (platform_core.backend):
    the fakes, SQLite under ``tmp_path``, or moto with the template's tables, bucket and queues."""
    if kind == "memory":
        yield MemoryBackend()
        return
    if kind == "local":
        yield backend_for(Settings(backend="local", home=tmp_path / "home"))
        return
    for settings in _moto(request, "mlbot-contract"):
        yield backend_for(settings)


def _moto(request: pytest.FixtureRequest, bucket: str) -> Iterator[Settings]:
    """Inside moto: the template's tables, bucket and training queues (tests.infra.deploy), and the settings a
    deployed function would have for them."""
    request.getfixturevalue("aws_credentials")
    request.getfixturevalue("atomic_moto_writes")
    with mock_aws():
        yield infra.deploy(Settings(backend="aws", bucket=bucket, region="us-east-1"))
