"""The two storage ports built from settings, for every deployable's wiring function.

Local: files and SQLite under $MLBOT_HOME. AWS: S3 and DynamoDB (boto3 imported only then, by the adapter).
"""
from __future__ import annotations

from typing import Any

from platform_core.config import Settings
from platform_core.ports import BlobStore, DatasetRepository


def build_storage(settings: Settings, *, dynamodb: Any = None) -> tuple[BlobStore, DatasetRepository]:
    """The blob store and the `Dataset` table; ``dynamodb`` shares one client with other tables."""
    if settings.backend == "aws":
        from platform_core.adapters.aws import DynamoDatasetRepository, S3BlobStore, make_boto3_client

        return (S3BlobStore(bucket=settings.bucket, client=make_boto3_client("s3", settings)),
                DynamoDatasetRepository(table_name=settings.dataset_table,
                                        client=dynamodb or make_boto3_client("dynamodb", settings)))
    from platform_core.adapters.local import LocalBlobStore, SqliteDatasetRepository

    settings.home.mkdir(parents=True, exist_ok=True)
    return LocalBlobStore(settings.home / "blobs"), SqliteDatasetRepository(settings.home / "mlbot.sqlite3")
