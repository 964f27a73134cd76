"""Use-case fixtures: Services over the in-memory fakes, or over every backend (tests/backends.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from handlers.services import Services
from platform_core.config import Settings
from tests.backends import services_on
from tools import realdata
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context


@pytest.fixture
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Services built by the real wiring function: on the in-memory fakes, or on each of the fakes, SQLite
    and moto for a test marked ``@on_every_backend`` (tests/backends.py)."""
    yield from services_on(getattr(request, "param", "memory"), request, tmp_path)


TRAINED_TENANT = "console:tester"


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory, fashion_mnist, vader_reviews) -> Path:
    """One image and one sentiment dataset, uploaded and trained with the default recipes."""
    home = tmp_path_factory.mktemp("predict-real") / "home"
    queue_real_datasets(home)
    assert drain(build_trainer_context(Settings(backend="local", home=home))) == 2
    return home


def queue_real_datasets(home: Path) -> Services:
    """Upload one real image and one real sentiment dataset under ``home`` and queue both for training."""
    services = build_services(Settings(backend="local", home=home), launcher=lambda job: None)
    uploads = {"clothes.zip": realdata.build_image_zip(["trouser", "sneaker", "bag"], 20),
               "reviews.csv": realdata.build_sentiment_csv(100)}
    for filename, data in uploads.items():
        name = filename.split(".")[0]
        assert dispatch(Command("upload", TRAINED_TENANT, "u", (name,), Attachment(filename, data)), services).ok
        assert dispatch(Command("train", TRAINED_TENANT, "u", (name,)), services).ok
    return services
