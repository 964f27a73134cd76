"""WSGI entry for gunicorn on the EC2 trainer: `gunicorn trainer_ec2.wsgi:app`.

Jobs queued while the trainer was stopped start at once. On AWS a watcher stops this instance after
MLBOT_IDLE_STOP_MINUTES (default 30) without queued or running work; the platform starts it again for
the next job (platform_core.adapters.aws_ec2).
"""
from __future__ import annotations

import logging

from platform_core.config import Settings
from trainer_ec2.app import create_app, start_idle_stopper
from trainer_ec2.wiring import build_trainer_context

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = Settings.from_env()
ctx = build_trainer_context(settings)
app = create_app(ctx)
app.extensions["mlbot_drainer"].kick()
start_idle_stopper(settings, ctx, app.extensions["mlbot_drainer"])
