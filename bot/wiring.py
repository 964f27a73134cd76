"""Builds the use cases' dependencies from settings: the local backend or AWS."""
from __future__ import annotations

from handlers.services import Services
from platform_core.config import Settings


def build_services(settings: Settings) -> Services:
    """Local: files and SQLite under $MLBOT_HOME. AWS: S3 and DynamoDB (adapters imported lazily)."""
    if settings.backend == "aws":
        from platform_core.adapters.aws import DynamoDatasetRepository, S3BlobStore, make_boto3_client

        return Services(
            blobs=S3BlobStore(bucket=settings.bucket, client=make_boto3_client("s3", settings)),
            records=DynamoDatasetRepository(
                table_name=settings.dataset_table, client=make_boto3_client("dynamodb", settings)
            ),
            limits=settings.limits,
        )
    from platform_core.adapters.local import LocalBlobStore, SqliteDatasetRepository

    settings.home.mkdir(parents=True, exist_ok=True)
    return Services(
        blobs=LocalBlobStore(settings.home / "blobs"),
        records=SqliteDatasetRepository(settings.home / "mlbot.sqlite3"),
        limits=settings.limits,
    )
