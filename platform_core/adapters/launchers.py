"""Trainer launchers: make sure some trainer will run a queued job.

Local: a detached worker process (`python -m trainer_ec2.worker`) or a thread in this process, each working
through the local training queue until it is empty. On AWS the launcher is the trainer group's scale-out
(platform_core.adapters.aws_fleet.AutoScalingLauncher).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

from platform_core.jobs import Job


log = logging.getLogger(__name__)


class ThreadLauncher:
    """Runs ``drain`` in a background thread of this process (mlbot serve, train --wait, tests)."""

    def __init__(self, drain: Callable[[], object]) -> None:
        self._drain = drain
        self.threads: list[threading.Thread] = []

    def __call__(self, job: Job) -> None:
        thread = threading.Thread(target=self._drain, name=f"train-{job.job_id}", daemon=True)
        self.threads.append(thread)
        thread.start()


class ProcessLauncher:
    """Starts a detached worker process that drains the queue and exits; output goes to ``log_path``."""

    def __init__(self, *, log_path: Path, env: dict[str, str] | None = None) -> None:
        self._log_path = log_path
        self._env = env

    def __call__(self, job: Job) -> None:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as log_file:
            subprocess.Popen([sys.executable, "-m", "trainer_ec2.worker"], stdin=subprocess.DEVNULL,
                             stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                             env=self._env or dict(os.environ))
