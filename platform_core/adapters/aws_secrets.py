"""Secrets from AWS Secrets Manager: JSON secrets, read once when a function or the trainer starts.

MLBOT_SECRETS_ARN names the chat secrets (CHAT_SECRETS), MLBOT_TRAINER_SECRET_ARN the trainer API's
shared token (MLBOT_TRAINER_TOKEN). Values already in the environment win.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from platform_core.adapters.aws import LazyClient, make_boto3_client
from platform_core.config import Settings
from platform_core.errors import ConfigError

CHAT_SECRETS = ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_CLIENT_ID",
                "SLACK_CLIENT_SECRET", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")
TRAINER_SECRETS = ("MLBOT_TRAINER_TOKEN",)
# environment variable naming the secret -> the settings that secret may hold
SECRET_SOURCES = {"MLBOT_SECRETS_ARN": CHAT_SECRETS, "MLBOT_TRAINER_SECRET_ARN": TRAINER_SECRETS}


def read_secret(secret_id: str, names: Iterable[str], *, setting: str, client: Any = None) -> dict[str, str]:
    """The secret's values for ``names`` only; ConfigError naming ``setting`` (never a value) if unreadable."""
    try:
        raw = LazyClient("secretsmanager", client)().get_secret_value(SecretId=secret_id)["SecretString"]
        values = json.loads(raw)
    except (ClientError, BotoCoreError, KeyError, ValueError) as exc:  # AWS said no; a binary secret; not JSON
        raise ConfigError(setting, f"could not be read ({type(exc).__name__})") from None
    if not isinstance(values, dict):
        raise ConfigError(setting, "must hold a JSON object")
    wanted = set(names)
    return {k: str(v) for k, v in values.items() if k in wanted and v}


def read_chat_secrets(secret_id: str, *, client: Any = None) -> dict[str, str]:
    """The secret's chat settings (only the names in CHAT_SECRETS); ConfigError, naming no value, if unreadable."""
    return read_secret(secret_id, CHAT_SECRETS, setting="MLBOT_SECRETS_ARN", client=client)


def settings_from_env(env: Mapping[str, str] | None = None, *, client: Any = None) -> Settings:
    """Settings for a deployed function or trainer: the environment, plus the chat secrets from
    MLBOT_SECRETS_ARN and the trainer token from MLBOT_TRAINER_SECRET_ARN when they name secrets
    (values already in the environment win)."""
    env = dict(os.environ if env is None else env)
    found: dict[str, str] = {}
    for setting, names in SECRET_SOURCES.items():
        secret = env.get(setting)
        if not secret:
            continue
        if client is None:
            client = make_boto3_client("secretsmanager", Settings.from_env(env))
        found.update(read_secret(secret, names, setting=setting, client=client))
    return Settings.from_env({**found, **env})
