"""Configuration, read from the environment in this one place."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from platform_core.errors import ConfigError

MB = 1024 * 1024
# The bot scopes the app asks for at install (deploy/slack-app-manifest.yaml has the same list).
DEFAULT_SLACK_SCOPES = ("commands", "chat:write", "files:read", "files:write", "channels:history",
                        "groups:history", "im:history", "users:read")  # users:read: is the user an admin?
# Any image we decode (an upload's or one sent for prediction) has at most this many pixels.
MAX_IMAGE_PIXELS = 40_000_000


@dataclass(frozen=True)
class Limits:
    """Dataset rules and the resource caps that keep validation bounded."""

    min_image_classes: int = 2
    max_image_classes: int = 10
    min_images_per_class: int = 10
    max_images_per_class: int = 100
    min_text_classes: int = 2
    max_text_classes: int = 3
    min_rows_per_class: int = 100
    max_rows_per_class: int = 1000
    max_archive_bytes: int = 50 * MB
    max_entries: int = 2000
    max_entry_bytes: int = 25 * MB
    max_total_bytes: int = 500 * MB
    max_compression_ratio: float = 100.0
    max_image_pixels: int = MAX_IMAGE_PIXELS
    min_image_side_warning: int = 32
    max_csv_bytes: int = 20 * MB
    max_csv_rows: int = 5000
    max_field_chars: int = 5000
    max_imbalance: float = 2.0

    @property
    def max_upload_bytes(self) -> int:
        """The largest file any upload may be (a zip or a CSV), checked before it is downloaded."""
        return max(self.max_archive_bytes, self.max_csv_bytes)


@dataclass(frozen=True)
class Settings:
    backend: str = "local"
    home: Path = field(default_factory=lambda: Path(".mlbot"))
    dataset_table: str = "Dataset"
    machine_table: str = "MachineStatus"
    job_table: str = "Job"
    idempotency_table: str = "Idempotency"
    topic_arn: str = ""
    machine_id: str = "local"  # this trainer's MachineStatus row (the EC2 instance id on AWS)
    predict_function: str = ""  # the inference Lambda's name or ARN (AWS backend)
    # The training fleet on AWS: per pool ("cpu", and "gpu" where the stack has one) its SQS queue URL and its
    # Auto Scaling group; one dead-letter queue for both. A trainer reads the queue of its own pool.
    queue_urls: Mapping[str, str] = field(default_factory=dict)
    trainer_groups: Mapping[str, str] = field(default_factory=dict)
    dead_letter_url: str = ""
    trainer_pool: str = "cpu"
    lifecycle_hook: str = ""  # the group's launch hook a trainer completes when its service answers
    bucket: str = ""
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    limits: Limits = field(default_factory=Limits)
    # Chat channels (the variable names the README gives): unset means the channel is off.
    slack_signing_secret: str = ""
    slack_bot_token: str = ""
    slack_app_token: str = ""
    slack_api_url: str = "https://slack.com/api/"
    # OAuth, for an app any workspace installs (then no SLACK_BOT_TOKEN: each workspace's token is stored)
    slack_client_id: str = ""
    slack_client_secret: str = ""
    slack_scopes: tuple[str, ...] = DEFAULT_SLACK_SCOPES
    # How long an uninstalled workspace's datasets are kept before they are deleted (platform_core.retention)
    departed_retention_days: int = 30
    api_rate_per_minute: int = 120  # requests per API key per minute; more answer 429 with Retry-After
    telegram_bot_token: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"
    # The shared secret of the trainer's HTTP API (`Authorization: Bearer <token>`); from Secrets Manager on AWS.
    trainer_token: str = ""

    def __repr__(self) -> str:  # settings get logged; tokens and secrets never do
        hidden = {"slack_signing_secret", "slack_bot_token", "slack_app_token", "telegram_bot_token",
                  "telegram_webhook_secret", "trainer_token", "slack_client_secret"}
        shown = ", ".join(f"{f}={'***' if f in hidden and getattr(self, f) else getattr(self, f)!r}"
                          for f in self.__dataclass_fields__)
        return f"Settings({shown})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from environment variables; a missing required one fails with its name."""
        env = os.environ if env is None else env
        backend = env.get("MLBOT_BACKEND", "local").strip().lower()
        if backend not in ("local", "aws"):
            raise ConfigError("MLBOT_BACKEND", f"must be 'local' or 'aws', not '{backend}'")
        limits = Limits(
            max_archive_bytes=_int_env(env, "MLBOT_MAX_ARCHIVE_MB", 50) * MB,
            max_csv_bytes=_int_env(env, "MLBOT_MAX_CSV_MB", 20) * MB,
        )
        bucket = env.get("MLBOT_BUCKET", "")
        if backend == "aws" and not bucket:
            raise ConfigError("MLBOT_BUCKET")
        return cls(
            backend=backend,
            home=Path(env.get("MLBOT_HOME", ".mlbot")),
            dataset_table=env.get("MLBOT_DATASET_TABLE", "Dataset"),
            machine_table=env.get("MLBOT_MACHINE_TABLE", "MachineStatus"),
            job_table=env.get("MLBOT_JOB_TABLE", "Job"),
            idempotency_table=env.get("MLBOT_IDEMPOTENCY_TABLE", "Idempotency"),
            topic_arn=env.get("MLBOT_TOPIC_ARN", ""),
            machine_id=env.get("MLBOT_MACHINE_ID", "local"),
            predict_function=env.get("MLBOT_PREDICT_FUNCTION", ""),
            queue_urls=_pools(env, "MLBOT_QUEUE_URL", "MLBOT_GPU_QUEUE_URL"),
            trainer_groups=_pools(env, "MLBOT_TRAINER_GROUP", "MLBOT_GPU_TRAINER_GROUP"),
            dead_letter_url=env.get("MLBOT_DEAD_LETTER_URL", "").strip(),
            trainer_pool=_pool(env.get("MLBOT_TRAINER_POOL", "cpu")),
            lifecycle_hook=env.get("MLBOT_LIFECYCLE_HOOK", "").strip(),
            bucket=bucket,
            region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            limits=limits,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            slack_bot_token=env.get("SLACK_BOT_TOKEN", ""),
            slack_app_token=env.get("SLACK_APP_TOKEN", ""),
            slack_api_url=env.get("SLACK_API_URL") or "https://slack.com/api/",
            slack_client_id=env.get("SLACK_CLIENT_ID", "").strip(),
            slack_client_secret=env.get("SLACK_CLIENT_SECRET", "").strip(),
            slack_scopes=tuple(s.strip() for s in env.get("SLACK_SCOPES", ",".join(DEFAULT_SLACK_SCOPES)).split(",")
                               if s.strip()),
            departed_retention_days=_int_env(env, "MLBOT_DEPARTED_RETENTION_DAYS", 30),
            api_rate_per_minute=_int_env(env, "MLBOT_API_RATE_PER_MINUTE", 120),
            telegram_bot_token=env.get("TELEGRAM_BOT_TOKEN", ""),
            telegram_webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET", ""),
            telegram_api_url=env.get("TELEGRAM_API_URL") or "https://api.telegram.org/bot",
            telegram_file_url=env.get("TELEGRAM_FILE_URL") or "https://api.telegram.org/file/bot",
            trainer_token=env.get("MLBOT_TRAINER_TOKEN", "").strip(),
        )


def _pools(env: Mapping[str, str], cpu: str, gpu: str) -> dict[str, str]:
    """{"cpu": ..., "gpu": ...} from two variables, leaving out an unset one."""
    found = {"cpu": env.get(cpu, "").strip(), "gpu": env.get(gpu, "").strip()}
    return {pool: value for pool, value in found.items() if value}


def _pool(raw: str) -> str:
    pool = raw.strip().lower() or "cpu"
    if pool not in ("cpu", "gpu"):
        raise ConfigError("MLBOT_TRAINER_POOL", f"must be 'cpu' or 'gpu', not '{raw}'")
    return pool


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, not '{raw}'") from None
    if value <= 0:
        raise ConfigError(name, "must be positive")
    return value
