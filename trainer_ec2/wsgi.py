"""WSGI entry for gunicorn on the EC2 trainer: `gunicorn trainer_ec2.wsgi:app`.

Settings come from the environment plus Secrets Manager (platform_core.adapters.aws_secrets): the trainer
API's token MLBOT_TRAINER_TOKEN from the secret named by MLBOT_TRAINER_SECRET_ARN. On AWS the trainer
refuses to start without it (trainer_ec2.app.build_app); every route but /health requires it as
`Authorization: Bearer <token>`.

On AWS the app's Worker long-polls this pool's SQS queue (MLBOT_QUEUE_URL) and trains one job at a time,
holding scale-in protection meanwhile; the Auto Scaling group, not this process, decides when the instance
stops (it returns to the warm pool once the queue has been empty for a while).
"""
from __future__ import annotations

import logging

from platform_core.adapters.aws_secrets import settings_from_env
from trainer_ec2.app import build_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = build_app(settings_from_env())
