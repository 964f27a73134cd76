"""WSGI entry for gunicorn on the EC2 trainer: `gunicorn trainer_ec2.wsgi:app`."""
from __future__ import annotations

import logging

from platform_core.config import Settings
from trainer_ec2.app import create_app
from trainer_ec2.wiring import build_trainer_context

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(build_trainer_context(Settings.from_env()))
# Jobs queued while the trainer was stopped start now.
app.extensions["mlbot_drainer"].kick()
