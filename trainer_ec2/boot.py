"""`python -m trainer_ec2.boot`: the last step of every boot of a trainer instance (trainer_ec2/deploy/boot.sh
runs it after fetching the current bundle), answering the Auto Scaling group's launch lifecycle hook.

- Being prepared for the warm pool (target lifecycle state ``Warmed:Stopped``): set-up is done, so complete
  the hook with CONTINUE and start nothing; the group stops the instance, ready to start in seconds.
- Going into service: start the trainer service, wait until its ``/health`` answers 200 (the worker is
  polling the queue), then CONTINUE. If it never does, ABANDON: the group terminates the instance and
  launches another, and the failed activity shows in the group's history. Nothing trains silently broken.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Callable

log = logging.getLogger("trainer_ec2.boot")
IMDS = "http://169.254.169.254/latest"
HEALTH_URL = "http://127.0.0.1:8000/health"
WARMED = "Warmed:"


def imds(path: str, *, opener: Callable = urllib.request.urlopen, timeout_s: float = 2.0) -> str:
    """One instance-metadata value over IMDSv2 (a session token first)."""
    token_request = urllib.request.Request(f"{IMDS}/api/token", method="PUT",
                                           headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with opener(token_request, timeout=timeout_s) as response:
        token = response.read().decode()
    request = urllib.request.Request(f"{IMDS}/meta-data/{path}", headers={"X-aws-ec2-metadata-token": token})
    with opener(request, timeout=timeout_s) as response:
        return response.read().decode().strip()


def wait_healthy(url: str = HEALTH_URL, *, timeout_s: float = 600.0, poll_s: float = 2.0,
                 opener: Callable = urllib.request.urlopen, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> bool:
    """True once ``url`` answers 200 within ``timeout_s``."""
    deadline = clock() + timeout_s
    while True:
        try:
            with opener(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if clock() >= deadline:
            return False
        sleep(poll_s)


def ready(*, target_state: str, start_service: Callable[[], None], healthy: Callable[[], bool],
          complete: Callable[[str], None]) -> int:
    """Answer the launch hook for ``target_state``; the process's exit code."""
    if target_state.startswith(WARMED):
        log.info("prepared for the warm pool (%s): set-up done, not starting the worker", target_state)
        complete("CONTINUE")
        return 0
    try:
        start_service()
        ok = healthy()
    except Exception:
        log.exception("could not start the trainer service")
        ok = False
    if not ok:
        log.error("the trainer did not become healthy: abandoning this instance (the group replaces it)")
        complete("ABANDON")
        return 1
    log.info("the trainer answers /health: in service")
    complete("CONTINUE")
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from platform_core.adapters.aws_fleet import LaunchHook
    from platform_core.backend import backend_for
    from platform_core.config import Settings

    settings = Settings.from_env()
    instance_id = imds("instance-id")
    try:
        target = imds("autoscaling/target-lifecycle-state")
    except (urllib.error.URLError, OSError):  # not in a group (started by hand): just start the service
        target = "InService"
    group = settings.trainer_groups.get(settings.trainer_pool, "")
    hook = LaunchHook(group=group, hook=settings.lifecycle_hook, instance_id=instance_id,
                      client=backend_for(settings).client("autoscaling"))

    def complete(result: str) -> None:
        if group and settings.lifecycle_hook:
            hook.complete(result)

    return ready(target_state=target,
                 start_service=lambda: subprocess.run(["systemctl", "start", "mlbot-trainer"], check=True),
                 healthy=lambda: wait_healthy(timeout_s=float(os.environ.get("MLBOT_HEALTH_TIMEOUT_S", "600"))),
                 complete=complete)


if __name__ == "__main__":
    sys.exit(main())
