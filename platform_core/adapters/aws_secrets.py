"""The chat secrets from AWS Secrets Manager: one JSON secret, read once when a function starts."""
from __future__ import annotations

import json
from typing import Any

from platform_core.adapters.aws import _LazyClient
from platform_core.errors import ConfigError

CHAT_SECRETS = ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "TELEGRAM_BOT_TOKEN",
                "TELEGRAM_WEBHOOK_SECRET")


def read_chat_secrets(secret_id: str, *, client: Any = None) -> dict[str, str]:
    """The secret's chat settings (only the names in CHAT_SECRETS); ConfigError, naming no value, if unreadable."""
    try:
        raw = _LazyClient("secretsmanager", client)().get_secret_value(SecretId=secret_id)["SecretString"]
        values = json.loads(raw)
    except Exception as exc:  # botocore errors, a binary secret, not JSON
        raise ConfigError("MLBOT_SECRETS_ARN", f"could not be read ({type(exc).__name__})") from None
    if not isinstance(values, dict):
        raise ConfigError("MLBOT_SECRETS_ARN", "must hold a JSON object")
    return {k: str(v) for k, v in values.items() if k in CHAT_SECRETS and v}
