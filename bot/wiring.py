"""Builds the use cases' dependencies from settings: the local backend or AWS."""
from __future__ import annotations

from typing import Mapping

from handlers.services import Services, TrainerLauncher
from platform_core.config import Settings
from platform_core.storage import build_storage


def build_services(settings: Settings, *, launcher: TrainerLauncher | None = None) -> Services:
    """Local: files and SQLite under $MLBOT_HOME. AWS: S3 and DynamoDB (adapters imported lazily)."""
    if settings.backend == "aws":
        from platform_core.adapters.aws import make_boto3_client
        from platform_core.adapters.aws_jobs import DynamoJobQueue
        from platform_core.adapters.aws_predict import LambdaPredictions
        from platform_core.adapters.launchers import HttpLauncher

        dynamodb = make_boto3_client("dynamodb", settings)
        blobs, records = build_storage(settings, dynamodb=dynamodb)
        if launcher is None and settings.trainer_instances:
            from platform_core.adapters.aws_ec2 import Ec2Launcher

            # Both waits together stay well inside the chat functions' 300 s timeout. A trainer that needs
            # longer (its first boot installs the stack) drains the queue when it comes up, so the job runs.
            launcher = Ec2Launcher(instance_ids=settings.trainer_instances, port=settings.trainer_port,
                                   client=make_boto3_client("ec2", settings), start_timeout_s=120,
                                   health_timeout_s=120, token=settings.trainer_token)
        elif launcher is None and settings.trainer_url:
            launcher = HttpLauncher(settings.trainer_url, token=settings.trainer_token)
        predictor = (LambdaPredictions(function=settings.predict_function, blobs=blobs,
                                       client=make_boto3_client("lambda", settings))
                     if settings.predict_function else None)
        return Services(blobs=blobs, records=records,
                        jobs=DynamoJobQueue(table_name=settings.job_table, client=dynamodb),
                        launcher=launcher, predictor=predictor, limits=settings.limits,
                        notifications=build_notification_log(settings))
    from platform_core.adapters.launchers import ProcessLauncher
    from platform_core.adapters.local_jobs import SqliteJobQueue

    from lambda_predict.handler import InProcessPredictions
    from lambda_predict.predictor import Predictor

    blobs, records = build_storage(settings)
    return Services(
        blobs=blobs, records=records,
        jobs=SqliteJobQueue(settings.home / "jobs.sqlite3"),
        launcher=launcher or ProcessLauncher(log_path=settings.home / "trainer.log"),
        # locally the inference Lambda's own handler function is called in process
        predictor=InProcessPredictions(Predictor(blobs=blobs, records=records), blobs),
        limits=settings.limits, notifications=build_notification_log(settings),
    )


def build_idempotency(settings: Settings):
    """Webhook keys already handled: SQLite under $MLBOT_HOME, or the Idempotency table on AWS."""
    if settings.backend == "aws":
        from platform_core.adapters.aws import make_boto3_client
        from platform_core.adapters.aws_chat import DynamoIdempotency

        return DynamoIdempotency(table_name=settings.idempotency_table,
                                 client=make_boto3_client("dynamodb", settings))
    from platform_core.adapters.local_chat import SqliteIdempotency

    return SqliteIdempotency(settings.home / "chat.sqlite3")


def build_notification_log(settings: Settings):
    """What the notifier sent per job: SQLite beside the jobs, or a map on the job's item on AWS."""
    if settings.backend == "aws":
        from platform_core.adapters.aws import make_boto3_client
        from platform_core.adapters.aws_chat import DynamoNotificationLog

        return DynamoNotificationLog(table_name=settings.job_table, client=make_boto3_client("dynamodb", settings))
    from platform_core.adapters.local_chat import SqliteNotificationLog

    return SqliteNotificationLog(settings.home / "jobs.sqlite3")


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings for a deployed function: the environment plus its secrets (platform_core.adapters.aws_secrets;
    imported here only when called, so importing the wiring does not load boto3)."""
    from platform_core.adapters.aws_secrets import settings_from_env as from_env_and_secrets

    return from_env_and_secrets(env)
