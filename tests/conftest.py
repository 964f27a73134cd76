"""Shared fixtures. Real data is required, never skipped: `make data` fetches it.

Also the promise of `make test-fast` (``-m "not slow"``): every test that trains with torch or starts a
process is marked slow, a module whose every test needs torch says ``pytestmark = pytest.mark.slow`` and is
not even imported, and the run fails if torch was imported all the same (a model may have been trained).
"""
from __future__ import annotations

import functools
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from tools import realdata

WHOLLY_SLOW = "\npytestmark = pytest.mark.slow"


def _share_botocore_loader() -> None:
    """boto3 clients are built one session each (platform_core.adapters.aws), and each new session parses the
    service's JSON model again (a tenth of a second for DynamoDB); in tests every session shares one loader."""
    import botocore.session

    botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.session.create_loader)


_share_botocore_loader()


def slow_deselected(config: pytest.Config) -> bool:
    """Whether this run's ``-m`` leaves out a test marked slow and nothing else."""
    markexpr = config.getoption("markexpr", "") or ""
    if not markexpr:
        return False
    from _pytest.mark.expression import Expression

    return not Expression.compile(markexpr).evaluate(lambda name, **kwargs: name == "slow")


def _wholly_slow(path: Path) -> bool:
    return path.suffix == ".py" and path.name.startswith("test_") and WHOLLY_SLOW in path.read_text(encoding="utf-8")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A module that is slow as a whole is not imported when slow tests are left out (it imports torch)."""
    return True if slow_deselected(config) and _wholly_slow(collection_path) else None


_named_slow_modules: list[Path] = []  # named on the command line, so imported all the same


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> None:
    if _wholly_slow(file_path):
        _named_slow_modules.append(file_path)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Without the slow tests nothing may train a model: torch must never have been imported."""
    if slow_deselected(session.config) and not _named_slow_modules and "torch" in sys.modules:
        sys.stderr.write("\nmake test-fast imported torch: a test that trains (or loads torch) is not marked slow\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if slow_deselected(config) and not _named_slow_modules and "torch" not in sys.modules:
        terminalreporter.write_line("slow tests left out: torch was never imported, so no model was trained")


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
# Reads too: moto deep-copies items while answering a query, and a write on another thread changes them under it.
_MOTO_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query", "scan")


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

    Serialising moto's writes (and the reads that copy what they write) makes the race tests check our
    conditions, not moto's threading."""
    lock = threading.RLock()

    def serialised(original: Any) -> Any:
        def write(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return write

    for method in _MOTO_WRITES:
        monkeypatch.setattr(DynamoDBBackend, method, serialised(getattr(DynamoDBBackend, method)))
    serialise_moto_sqs(monkeypatch)


def serialise_moto_sqs(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQS hands a visible message to one receiver; moto marks it received in unlocked steps, so two threads
    could both get it. Each SQS call runs under one lock; a long poll polls without holding it."""
    from moto.sqs.models import SQSBackend

    lock = threading.RLock()

    def locked(original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)
        return call

    original_receive = SQSBackend.receive_message

    def receive(self: Any, queue_name: str, count: int, wait_seconds_timeout: int, visibility_timeout: int,
                message_attribute_names: Any = None) -> Any:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            with lock:
                found = original_receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    monkeypatch.setattr(SQSBackend, "receive_message", receive)
    for method in ("send_message", "delete_message", "change_message_visibility", "get_queue_attributes"):
        monkeypatch.setattr(SQSBackend, method, locked(getattr(SQSBackend, method)))


@pytest.fixture
def atomic_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture form of serialise_moto_writes."""
    serialise_moto_writes(monkeypatch)
