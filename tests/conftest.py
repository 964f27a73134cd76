"""Shared fixtures. Real data is required, never skipped: `make data` fetches it."""
from __future__ import annotations

import pytest

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
