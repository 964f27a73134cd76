"""Builds the use cases' dependencies from settings: the local backend or AWS."""
from __future__ import annotations

from handlers.services import Services, TrainerLauncher
from platform_core.config import Settings


def build_services(settings: Settings, *, launcher: TrainerLauncher | None = None) -> Services:
    """Local: files and SQLite under $MLBOT_HOME. AWS: S3 and DynamoDB (adapters imported lazily)."""
    if settings.backend == "aws":
        from platform_core.adapters.aws import DynamoDatasetRepository, S3BlobStore, make_boto3_client
        from platform_core.adapters.aws_jobs import DynamoJobQueue
        from platform_core.adapters.launchers import HttpLauncher

        dynamodb = make_boto3_client("dynamodb", settings)
        if launcher is None and settings.trainer_url:
            launcher = HttpLauncher(settings.trainer_url)
        return Services(
            blobs=S3BlobStore(bucket=settings.bucket, client=make_boto3_client("s3", settings)),
            records=DynamoDatasetRepository(table_name=settings.dataset_table, client=dynamodb),
            jobs=DynamoJobQueue(table_name=settings.job_table, client=dynamodb),
            launcher=launcher, limits=settings.limits,
        )
    from platform_core.adapters.launchers import ProcessLauncher
    from platform_core.adapters.local import LocalBlobStore, SqliteDatasetRepository
    from platform_core.adapters.local_jobs import SqliteJobQueue

    from lambda_predict.predictor import Predictor

    settings.home.mkdir(parents=True, exist_ok=True)
    blobs = LocalBlobStore(settings.home / "blobs")
    records = SqliteDatasetRepository(settings.home / "mlbot.sqlite3")
    return Services(
        blobs=blobs, records=records,
        jobs=SqliteJobQueue(settings.home / "jobs.sqlite3"),
        launcher=launcher or ProcessLauncher(log_path=settings.home / "trainer.log"),
        predictor=Predictor(blobs=blobs, records=records),  # in process, as DESIGN.md's local backend says
        limits=settings.limits,
    )
