"""Concurrent webhook traffic (bench/load.py, smaller): every request answered 200, each user answered
once, re-deliveries of the same event or update id cause nothing. Timings are reported by `make bench`."""
from __future__ import annotations

import pytest

from bench.load import run_load


@pytest.mark.slow
def test_concurrent_mixed_traffic_is_answered_once_per_request() -> None:
    figures = run_load(n=80, duplicates=16, workers=24)
    assert figures["statuses"] == {200: 96}
    assert figures["slack_replies"] == figures["slack_expected"] == 40
    assert figures["telegram_replies"] == figures["telegram_expected"] == 40
