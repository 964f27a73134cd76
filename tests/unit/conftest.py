"""unit/ does no I/O: no socket at all (not even loopback), no process, no temporary directory. A test that
needs one belongs in contract/, integration/ or e2e/."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_DISK = {"tmp_path", "tmp_path_factory", "tmpdir", "tmpdir_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # the hook sees the whole session: mark this folder's tests only
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.disable_socket)


@pytest.fixture(autouse=True)
def no_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    used = _DISK & set(request.fixturenames)
    if used:
        pytest.fail(f"a unit test may not use {', '.join(sorted(used))}; it belongs in integration/")

    def refuse(*args, **kwargs):
        raise AssertionError("a unit test started a process; it belongs in integration/")

    monkeypatch.setattr(subprocess, "Popen", refuse)
