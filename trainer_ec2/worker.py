"""`python -m trainer_ec2.worker`: drain the training queue once on this machine, then exit."""
from __future__ import annotations

import logging
import sys

from platform_core.config import Settings
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context


def main() -> int:
    """Run every queued job this machine can take; 0 when the queue was drained."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = build_trainer_context(Settings.from_env())
    ran = drain(ctx)
    logging.getLogger("trainer_ec2.worker").info("drained the queue: %d job(s) run", ran)
    return 0


if __name__ == "__main__":
    sys.exit(main())
