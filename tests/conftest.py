"""Shared fixtures. Real data is required, never skipped: `make data` fetches it."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from tools import realdata


@pytest.fixture(scope="session")
def fashion_mnist():
    """Fashion-MNIST (Debian's dataset-fashion-mnist); fails with the fix when absent."""
    if not realdata.fashion_mnist_dir().is_dir():
        pytest.fail("Fashion-MNIST is missing: run `make data` (apt-get install dataset-fashion-mnist)")
    return realdata.load_fashion_mnist("train")


@pytest.fixture(scope="session")
def vader_reviews():
    """VADER's human-rated movie-review snippets; fails with the fix when absent."""
    try:
        realdata.vader_archive(download=False)
    except (FileNotFoundError, ValueError) as exc:
        pytest.fail(f"VADER reviews are missing ({exc}): run `make data`")
    return realdata.load_movie_reviews()


# Every DynamoDB write moto performs; update_item may call Table.put_item inside, hence an RLock.
_MOTO_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no endpoint override, so nothing can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SNS"):
        monkeypatch.delenv(name, raising=False)


def serialise_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB checks a condition and writes atomically; moto does it in unlocked steps.

    Serialising moto's writes makes the race tests check our conditions, not moto's threading."""
    lock = threading.RLock()

    def serialised(original: Any) -> Any:
        def write(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return write

    for method in _MOTO_WRITES:
        monkeypatch.setattr(DynamoDBBackend, method, serialised(getattr(DynamoDBBackend, method)))


@pytest.fixture
def atomic_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture form of serialise_moto_writes."""
    serialise_moto_writes(monkeypatch)
