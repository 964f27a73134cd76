"""`python -m trainer_ec2.worker`: the local worker process. It reconciles the local queue (a job whose ticket
was lost in a crash gets one again), works through the training queue on this machine until it is empty, and
exits. The deployed trainer runs trainer_ec2.runner.Worker inside its service instead (trainer_ec2.app)."""
from __future__ import annotations

import logging
import sys

from platform_core.backend import backend_for
from platform_core.config import Settings
from platform_core.reconcile import reconcile
from trainer_ec2.runner import drain, preload
from trainer_ec2.wiring import build_trainer_context


def main() -> int:
    """Run every queued job this machine can take; 0 when the queue was drained."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    backend = backend_for(settings)
    ctx = build_trainer_context(settings, backend=backend)
    if backend.name == "local":
        reconcile(ctx.jobs, ctx.records, ctx.events, backend.queues, ctx.clock())
    preload()
    ran = drain(ctx)
    logging.getLogger("trainer_ec2.worker").info("drained the queue: %d job(s) run", ran)
    return 0


if __name__ == "__main__":
    sys.exit(main())
