"""Deployed functions read the chat secrets, and functions and trainers the trainer token, from Secrets
Manager (moto), never from the template."""
from __future__ import annotations

import json

import pytest
from moto import mock_aws

from bot.wiring import settings_from_env
from platform_core.adapters.aws import make_boto3_client
from platform_core.config import Settings
from platform_core.errors import ConfigError

SECRETS = {"SLACK_SIGNING_SECRET": "sign-me", "SLACK_BOT_TOKEN": "xoxb-from-secrets",
           "TELEGRAM_BOT_TOKEN": "123:from-secrets", "TELEGRAM_WEBHOOK_SECRET": "hook", "UNRELATED": "ignored"}


@pytest.fixture
def secret(aws_credentials):
    with mock_aws():
        client = make_boto3_client("secretsmanager", Settings(backend="aws", bucket="b", region="us-east-1"))
        arn = client.create_secret(Name="mlbot/chat", SecretString=json.dumps(SECRETS))["ARN"]
        bad = client.create_secret(Name="mlbot/bad", SecretString="not json")["ARN"]
        yield arn, bad


TRAINER_TOKEN = "tok-from-the-trainer-secret-0123456789"


@pytest.fixture
def trainer_secret(aws_credentials):
    with mock_aws():
        client = make_boto3_client("secretsmanager", Settings(backend="aws", bucket="b", region="us-east-1"))
        arn = client.create_secret(Name="mlbot/trainer", SecretString=json.dumps(
            {"MLBOT_TRAINER_TOKEN": TRAINER_TOKEN, "SLACK_BOT_TOKEN": "xoxb-not-from-here"}))["ARN"]
        chat = client.create_secret(Name="mlbot/chat", SecretString=json.dumps(
            {"SLACK_BOT_TOKEN": "xoxb-chat", "MLBOT_TRAINER_TOKEN": "not-from-the-chat-secret"}))["ARN"]
        bad = client.create_secret(Name="mlbot/trainer-bad", SecretString=json.dumps(["secret-value"]))["ARN"]
        yield arn, chat, bad


def test_the_chat_secrets_come_from_the_secret_and_the_environment_wins(secret) -> None:
    arn, _ = secret
    env = {"MLBOT_BACKEND": "aws", "MLBOT_BUCKET": "b", "AWS_REGION": "us-east-1", "MLBOT_SECRETS_ARN": arn,
           "TELEGRAM_WEBHOOK_SECRET": "set-by-hand"}
    settings = settings_from_env(env)
    assert (settings.slack_signing_secret, settings.slack_bot_token) == ("sign-me", "xoxb-from-secrets")
    assert settings.telegram_bot_token == "123:from-secrets" and settings.telegram_webhook_secret == "set-by-hand"
    assert "xoxb-from-secrets" not in repr(settings) and "sign-me" not in repr(settings)


def test_an_unreadable_secret_fails_at_start_naming_the_setting_not_the_value(secret) -> None:
    _, bad = secret
    for arn in (bad, "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"):
        with pytest.raises(ConfigError) as caught:
            settings_from_env({"MLBOT_BACKEND": "aws", "MLBOT_BUCKET": "b", "MLBOT_SECRETS_ARN": arn})
        assert "MLBOT_SECRETS_ARN" in caught.value.user_message() and "not json" not in caught.value.user_message()


def test_without_a_secret_the_environment_is_all() -> None:
    assert settings_from_env({"SLACK_BOT_TOKEN": "xoxb-env"}).slack_bot_token == "xoxb-env"


AWS_ENV = {"MLBOT_BACKEND": "aws", "MLBOT_BUCKET": "b", "AWS_REGION": "us-east-1"}


def test_the_trainer_token_comes_from_the_trainer_secret_only(trainer_secret) -> None:
    arn, chat, _ = trainer_secret
    settings = settings_from_env({**AWS_ENV, "MLBOT_TRAINER_SECRET_ARN": arn, "MLBOT_SECRETS_ARN": chat})
    assert settings.trainer_token == TRAINER_TOKEN and settings.slack_bot_token == "xoxb-chat"
    assert TRAINER_TOKEN not in repr(settings) and "trainer_token='***'" in repr(settings)
    assert settings_from_env({**AWS_ENV, "MLBOT_SECRETS_ARN": chat}).trainer_token == ""


def test_a_trainer_token_in_the_environment_wins(trainer_secret) -> None:
    arn, _, _ = trainer_secret
    settings = settings_from_env({**AWS_ENV, "MLBOT_TRAINER_SECRET_ARN": arn, "MLBOT_TRAINER_TOKEN": "by-hand"})
    assert settings.trainer_token == "by-hand"


def test_the_platform_core_reader_is_the_one_the_wiring_uses(trainer_secret) -> None:
    from platform_core.adapters import aws_secrets

    arn, _, _ = trainer_secret
    assert aws_secrets.settings_from_env({**AWS_ENV, "MLBOT_TRAINER_SECRET_ARN": arn}).trainer_token == TRAINER_TOKEN


def test_an_unreadable_trainer_secret_fails_naming_the_setting_not_the_value(trainer_secret) -> None:
    _, _, bad = trainer_secret
    for arn in (bad, "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"):
        with pytest.raises(ConfigError) as caught:
            settings_from_env({**AWS_ENV, "MLBOT_TRAINER_SECRET_ARN": arn})
        message = caught.value.user_message()
        assert caught.value.setting == "MLBOT_TRAINER_SECRET_ARN" and "MLBOT_TRAINER_SECRET_ARN" in message
        assert "secret-value" not in message and TRAINER_TOKEN not in message


def test_the_trainer_token_is_read_from_the_plain_environment_too() -> None:
    settings = Settings.from_env({"MLBOT_TRAINER_TOKEN": " spaced-token "})
    assert settings.trainer_token == "spaced-token" and "spaced-token" not in repr(settings)
