"""AWS adapters: blobs in S3 and the `Dataset` table in DynamoDB, and the plumbing every aws_* adapter shares
(public by design): the lazily built client, the translation of botocore's errors into StorageError at
the boundary, and DynamoDB's item (de)serialisation.

Only the aws_* adapters import boto3/botocore. Clients are injected by the wiring code (platform_core.backend);
when none is given one is built lazily on first use, never at import time.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import fields
from decimal import Decimal
from typing import Any, Iterator

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from platform_core.config import Settings
from platform_core.errors import BlobNotFound, ConcurrentUpdate, DatasetExists, StorageError
from platform_core.records import DatasetRecord

_MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})
_CONDITION_FAILED = "ConditionalCheckFailedException"
_FLOAT_FIELDS = frozenset(f.name for f in fields(DatasetRecord) if "float" in str(f.type))
SERIALIZER = TypeSerializer()
DESERIALIZER = TypeDeserializer()


def make_boto3_client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``service`` in settings.region, at settings.aws_endpoint_url if set."""
    session = boto3.session.Session()  # one per client: the default session is not thread-safe
    return session.client(
        service,
        region_name=settings.region,
        endpoint_url=settings.aws_endpoint_url,
        config=Config(retries={"mode": "standard"}),
    )


class LazyClient:
    """The injected client, or one built from boto3's environment on first use."""

    def __init__(self, service: str, client: Any) -> None:
        self._service = service
        self._client = client
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = boto3.session.Session().client(self._service)
        return self._client


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


@contextmanager
def aws_errors(operation: str, key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        raise StorageError(operation, key, _code(exc)) from exc
    except BotoCoreError as exc:
        raise StorageError(operation, key, type(exc).__name__) from exc


class S3BlobStore:
    """BlobStore over one S3 bucket; keys are object keys."""

    def __init__(self, *, bucket: str, client: Any = None) -> None:
        self._bucket = bucket
        self._s3 = LazyClient("s3", client)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Upload ``data`` as the object ``key``."""
        with aws_errors("put", key):
            self._s3().put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        """Download the object; a missing one is BlobNotFound."""
        with aws_errors("get", key):
            try:
                response = self._s3().get_object(Bucket=self._bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING_OBJECT:
                    raise BlobNotFound(key) from None
                raise
            return response["Body"].read()

    def exists(self, key: str) -> bool:
        """True when HEAD finds the object."""
        with aws_errors("exists", key):
            try:
                self._s3().head_object(Bucket=self._bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING_OBJECT:
                    return False
                raise
            return True

    def size(self, key: str) -> int:
        """ContentLength from HEAD; a missing object is BlobNotFound."""
        with aws_errors("size", key):
            try:
                return int(self._s3().head_object(Bucket=self._bucket, Key=key)["ContentLength"])
            except ClientError as exc:
                if _code(exc) in _MISSING_OBJECT:
                    raise BlobNotFound(key) from None
                raise

    def delete(self, key: str) -> None:
        """Delete the object and every stored version of it (the bucket is versioned: a plain delete
        would only hide it behind a delete marker); a missing key is not an error."""
        with aws_errors("delete", key):
            versions = []
            pages = self._s3().get_paginator("list_object_versions")
            for page in pages.paginate(Bucket=self._bucket, Prefix=key):
                versions += [{"Key": v["Key"], "VersionId": v["VersionId"]}
                             for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                             if v["Key"] == key]
            for start in range(0, len(versions), 1000):  # DeleteObjects takes 1000 at a time
                response = self._s3().delete_objects(
                    Bucket=self._bucket, Delete={"Objects": versions[start:start + 1000], "Quiet": True})
                if response.get("Errors"):
                    raise StorageError("delete", key, str(response["Errors"][0].get("Code", "Unknown")))

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` across all pages, sorted."""
        keys: list[str] = []
        with aws_errors("list", prefix):
            pages = self._s3().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self._bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def upload_form(self, key: str, *, content_type: str, max_bytes: int,
                    expires_s: int) -> tuple[str, dict[str, str]] | None:
        """A presigned POST: S3 checks the signature, the expiry, the content type and refuses a file over
        ``max_bytes`` (content-length-range) before anything is stored."""
        with aws_errors("upload_form", key):
            form = self._s3().generate_presigned_post(
                Bucket=self._bucket, Key=key, Fields={"Content-Type": content_type},
                Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
                ExpiresIn=expires_s)
        return form["url"], dict(form["fields"])


class DynamoDatasetRepository:
    """DatasetRepository over a DynamoDB table keyed by tenant (HASH) and name (RANGE)."""

    def __init__(self, *, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._dynamodb = LazyClient("dynamodb", client)

    def get(self, tenant: str, name: str) -> DatasetRecord | None:
        """A strongly consistent read of one record, or None."""
        with aws_errors("get", f"{tenant}/{name}"):
            response = self._dynamodb().get_item(
                TableName=self._table, Key=_key(tenant, name), ConsistentRead=True
            )
        item = response.get("Item")
        return _from_item(item) if item else None

    def create(self, record: DatasetRecord) -> None:
        """Put the record only if no item has its key."""
        self._put(
            "create",
            record,
            DatasetExists(record.name),
            ConditionExpression="attribute_not_exists(#t)",
            ExpressionAttributeNames={"#t": "tenant"},
        )

    def replace(self, record: DatasetRecord, expected_revision: int) -> None:
        """Put the record only if the stored revision is ``expected_revision``."""
        self._put(
            "replace",
            record,
            ConcurrentUpdate(record.name),
            ConditionExpression="#rev = :expected",
            ExpressionAttributeNames={"#rev": "revision"},
            ExpressionAttributeValues={":expected": {"N": str(expected_revision)}},
        )

    def _put(
        self, operation: str, record: DatasetRecord, lost: Exception, **condition: Any
    ) -> None:
        with aws_errors(operation, f"{record.tenant}/{record.name}"):
            try:
                self._dynamodb().put_item(TableName=self._table, Item=_to_item(record), **condition)
            except ClientError as exc:
                if _code(exc) == _CONDITION_FAILED:
                    raise lost from None
                raise

    def delete(self, tenant: str, name: str) -> None:
        """Delete the item; a missing one is not an error."""
        with aws_errors("delete", f"{tenant}/{name}"):
            self._dynamodb().delete_item(TableName=self._table, Key=_key(tenant, name))

    def list(self, tenant: str) -> list[DatasetRecord]:
        """Query the tenant's partition across all pages, sorted by name."""
        records: list[DatasetRecord] = []
        with aws_errors("list", tenant):
            pages = self._dynamodb().get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="#t = :t",
                ExpressionAttributeNames={"#t": "tenant"},
                ExpressionAttributeValues={":t": {"S": tenant}},
                ConsistentRead=True,
            )
            for page in pages:
                records.extend(_from_item(item) for item in page.get("Items", []))
        return sorted(records, key=lambda r: r.name)


def _key(tenant: str, name: str) -> dict[str, Any]:
    return {"tenant": {"S": tenant}, "name": {"S": name}}


def _to_item(record: DatasetRecord) -> dict[str, Any]:
    # None is stored as NULL (not omitted) so that from_dict sees exactly what was written.
    return {k: SERIALIZER.serialize(to_dynamo(v)) for k, v in record.as_dict().items()}


def to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))  # repr is the shortest string that reads back as this float
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    return value


def _from_item(item: dict[str, Any]) -> DatasetRecord:
    data = {k: DESERIALIZER.deserialize(v) for k, v in item.items()}
    return DatasetRecord.from_dict(
        {k: from_dynamo(v, as_float=k in _FLOAT_FIELDS) for k, v in data.items()}
    )


def from_dynamo(value: Any, as_float: bool = False) -> Any:
    # DynamoDB trims trailing zeros (1.0 comes back as 1), so the field's type decides.
    if isinstance(value, Decimal):
        return float(value) if as_float or value != value.to_integral_value() else int(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    return value
