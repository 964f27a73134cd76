"""WSGI entry for gunicorn on the EC2 trainer: `gunicorn trainer_ec2.wsgi:app`.

Settings come from the environment plus Secrets Manager (platform_core.adapters.aws_secrets): the trainer
API's token MLBOT_TRAINER_TOKEN from the secret named by MLBOT_TRAINER_SECRET_ARN. On AWS the trainer
refuses to start without it (trainer_ec2.app.build_app); every route but /health requires it as
`Authorization: Bearer <token>`.

Jobs queued while the trainer was stopped start at once. On AWS a watcher stops this instance after
MLBOT_IDLE_STOP_MINUTES (default 30) without queued or running work; the platform starts it again for
the next job (platform_core.adapters.aws_ec2).
"""
from __future__ import annotations

import logging

from platform_core.adapters.aws_secrets import settings_from_env
from trainer_ec2.app import build_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = build_app(settings_from_env())
