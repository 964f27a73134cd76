"""The EC2 trainers' lifecycle (AWS adapter): start a stopped trainer for a job, and stop an idle one.

``Ec2Launcher`` is the TrainerLauncher of the AWS backend. For a queued job it picks a trainer instance
(one already running first, else a stopped one), reads its state, starts it when stopped (when stopping,
waits for stopped, then starts), waits for running, polls the trainer's ``/health`` and POSTs the job id
with the trainer API's shared token (``token``, MLBOT_TRAINER_TOKEN).
Every wait is bounded and every step can be repeated safely: starting a running instance is a no-op, and
the trainer ignores a job id it has already queued. With N trainers, each drains the shared queue.
"""
from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from platform_core.adapters.aws import LazyClient
from platform_core.adapters.launchers import HttpLauncher
from platform_core.errors import TrainerUnavailable
from platform_core.jobs import Job

log = logging.getLogger(__name__)
TRAINER_PORT = 80  # nginx in front of gunicorn (trainer_ec2/deploy)
GONE = ("shutting-down", "terminated")


class Ec2Launcher:
    """Makes sure one of ``instance_ids`` runs a healthy trainer, then hands it the job."""

    def __init__(self, *, instance_ids: Sequence[str], token: str, client: Any = None, port: int = TRAINER_PORT,
                 address: Callable[[dict], str] | None = None, start_timeout_s: float = 300,
                 health_timeout_s: float = 300, poll_s: float = 5, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 opener: Callable[..., Any] = urllib.request.urlopen) -> None:
        if not instance_ids:
            raise ValueError("at least one trainer instance id")
        self.instance_ids = list(instance_ids)
        self._token = token
        self._ec2 = LazyClient("ec2", client)
        self._port, self._start_timeout, self._health_timeout, self._poll = port, start_timeout_s, \
            health_timeout_s, poll_s
        self._address = address or (lambda instance: str(instance.get("PrivateIpAddress") or ""))
        self._clock, self._sleep, self._open = clock, sleep, opener

    def __call__(self, job: Job) -> None:
        instance = self.ensure_running()
        base = f"http://{self._address(instance)}:{self._port}"
        self._wait_healthy(base)
        HttpLauncher(base, token=self._token, opener=self._open)(job)

    def ensure_running(self) -> dict:
        """A running trainer instance's description, starting one if none runs."""
        instances = self._describe(self.instance_ids)
        usable = [i for i in instances if i["State"]["Name"] not in GONE]
        if not usable:
            raise TrainerUnavailable("every trainer instance is terminated; redeploy the stack")
        order = {"running": 0, "pending": 1, "stopped": 2, "stopping": 3}
        chosen = min(usable, key=lambda i: order.get(i["State"]["Name"], 9))
        state = chosen["State"]["Name"]
        instance_id = chosen["InstanceId"]
        if state == "stopping":
            chosen = self._wait_for(instance_id, "stopped")
            state = "stopped"
        if state == "stopped":
            log.info("starting trainer %s", instance_id)
            try:
                self._ec2().start_instances(InstanceIds=[instance_id])
            except (ClientError, BotoCoreError) as exc:  # capacity, permissions, a limit
                raise TrainerUnavailable(f"could not start {instance_id}: {exc}") from exc
        if chosen["State"]["Name"] != "running" or not self._address(chosen):
            chosen = self._wait_for(instance_id, "running")
        return chosen

    def _describe(self, ids: Sequence[str]) -> list[dict]:
        try:
            reservations = self._ec2().describe_instances(InstanceIds=list(ids))["Reservations"]
        except (ClientError, BotoCoreError) as exc:
            raise TrainerUnavailable(f"could not read the trainer instances: {exc}") from exc
        return [i for r in reservations for i in r["Instances"]]

    def _wait_for(self, instance_id: str, wanted: str) -> dict:
        deadline = self._clock() + self._start_timeout
        while True:
            instance = self._describe([instance_id])[0]
            state = instance["State"]["Name"]
            if state == wanted and (wanted != "running" or self._address(instance)):
                return instance
            if state in GONE:
                raise TrainerUnavailable(f"trainer {instance_id} is {state}")
            if self._clock() > deadline:
                raise TrainerUnavailable(f"trainer {instance_id} still {state} after {self._start_timeout:.0f} s")
            self._sleep(self._poll)

    def _wait_healthy(self, base: str) -> None:
        deadline = self._clock() + self._health_timeout
        while True:
            try:
                with self._open(base + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self._clock() > deadline:
                raise TrainerUnavailable(f"the trainer at {base} did not answer /health within "
                                         f"{self._health_timeout:.0f} s")
            self._sleep(self._poll)


class IdleStopper:
    """On the trainer: stops its own instance once no job has queued or run for ``idle_s`` (to save cost)."""

    def __init__(self, *, instance_id: str, busy: Callable[[], bool], idle_s: float, client: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.instance_id, self._busy, self._idle_s, self._clock = instance_id, busy, idle_s, clock
        self._ec2 = LazyClient("ec2", client)
        self._last_busy = clock()

    def check(self) -> bool:
        """One look; True when it asked EC2 to stop this instance."""
        now = self._clock()
        if self._busy():
            self._last_busy = now
            return False
        if now - self._last_busy < self._idle_s:
            return False
        log.info("trainer idle for %.0f s: stopping %s", now - self._last_busy, self.instance_id)
        self._ec2().stop_instances(InstanceIds=[self.instance_id])
        self._last_busy = now  # a failed stop is retried one idle period later, not every check
        return True
