"""Trainer launchers: make sure some trainer will run a queued job.

Local: a detached worker process (`python -m trainer_ec2.worker`) or a thread in this process.
Remote: POST the job id to a running trainer's HTTP API with its shared token (the EC2 lifecycle wraps this
on AWS).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from platform_core.errors import TrainerUnavailable
from platform_core.jobs import TRAIN_ROUTES, Job

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


class HttpLauncher:
    """POSTs a queued job's id to a trainer's HTTP API (README "Using it locally"), with the shared token as
    `Authorization: Bearer`; the trainer answers 202 and trains off the request thread.

    The Job record is already in the queue, so only its id (and kind, tenant and name, for logs and older
    trainers) is sent: the trainer takes reply_to and the queue order from the stored record."""

    def __init__(self, base_url: str, *, token: str, timeout_s: float = 10.0,
                 opener: Callable[..., object] = urllib.request.urlopen) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout_s
        self._open = opener

    def __call__(self, job: Job) -> None:
        if not self._token:
            raise TrainerUnavailable("no trainer token is configured (MLBOT_TRAINER_TOKEN)")
        body = json.dumps({"job_id": job.job_id, "kind": job.kind, "tenant": job.tenant,
                           "name": job.name}).encode()
        req = urllib.request.Request(self._base + TRAIN_ROUTES[job.kind], data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self._token}"})
        try:
            with self._open(req, timeout=self._timeout) as response:  # type: ignore[attr-defined]
                if response.status != 202:
                    raise TrainerUnavailable(f"trainer answered {response.status}")
        except urllib.error.HTTPError as exc:  # a 4xx/5xx answer: its status, never the request headers
            raise TrainerUnavailable(f"trainer answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TrainerUnavailable(str(exc)) from exc
