"""Upload: validate, store the blob, then write the record; all or nothing."""
from __future__ import annotations

import logging
from dataclasses import replace

from handlers.commands import Button, Command, Reply
from handlers.permissions import require_owner_or_admin
from handlers.services import Services
from platform_core.errors import (
    DatasetBusy,
    DatasetRejected,
    MissingAttachment,
    MlbotError,
    UsageError,
)
from platform_core.records import BUSY_STATUSES, DatasetRecord, TrainingStatus, dataset_prefix, normalise_name, utc_now
from platform_core.validation import ValidationReport, validate_dataset

log = logging.getLogger(__name__)


def handle_upload(cmd: Command, services: Services) -> Reply:
    """`upload NAME [description]` with a file attached."""
    record, report = upload(cmd, services)
    verb = "Replaced" if record.dataset_version > 1 else "Stored"
    classes = ", ".join(f"{name} ({count})" for name, count in record.class_counts.items())
    lines = [f"{verb} {record.kind} dataset '{record.name}' (version {record.dataset_version}): {classes}."]
    lines += [f"Note: {w.message}" for w in report.warnings]
    lines.append(f"Next: train {record.name}")
    return Reply("\n".join(lines), data={"stored": True, "dataset": record.as_dict(),
                                         "validation": report.as_dict()},
                 buttons=(Button(f"Train {record.name}", f"train {record.name}"),))


def upload(cmd: Command, services: Services) -> tuple[DatasetRecord, ValidationReport]:
    """Validate and store; raises an MlbotError and leaves nothing behind on any failure."""
    if not cmd.args:
        raise UsageError("upload NAME [description], with a zip of images or a CSV attached")
    name = normalise_name(cmd.args[0])
    if cmd.attachment is None:
        raise MissingAttachment("upload")
    report = validate_dataset(cmd.attachment.data, cmd.attachment.filename, services.limits)
    if not report.valid:
        raise DatasetRejected(report)
    existing = services.records.get(cmd.tenant, name)
    if existing is not None:
        require_owner_or_admin(cmd, existing, "upload")
        if existing.training_status in BUSY_STATUSES:
            raise DatasetBusy(name, existing.training_status)
    version = existing.dataset_version + 1 if existing else 1
    key = f"{dataset_prefix(cmd.tenant, name)}v{version}-{services.new_id()}/{report.normalised_name}"
    record = _new_record(cmd, name, key, version, report, existing)
    services.blobs.put(key, report.normalised or b"", _content_type(report.normalised_name))
    try:
        if existing is None:
            services.records.create(record)
        else:
            services.records.replace(record, expected_revision=existing.revision)
    except BaseException:
        _forget(services, key)
        raise
    if existing is not None:
        # The new version is stored and current; only now may the old one go.
        _forget(services, existing.dataset_path)
    return record, report


def _new_record(cmd: Command, name: str, key: str, version: int, report: ValidationReport,
                existing: DatasetRecord | None) -> DatasetRecord:
    description = " ".join(cmd.args[1:]).strip()
    fields = dict(
        name=name, tenant=cmd.tenant, owner=cmd.user, kind=report.kind.value, dataset_path=key,
        class_counts=dict(report.classes), dataset_version=version, size_bytes=len(report.normalised or b""),
        training_status=TrainingStatus.NOT_STARTED.value, updated_at=utc_now(),
    )
    if existing is None:
        return DatasetRecord(description=description, **fields)
    # A re-upload keeps the last good model usable until a new one is trained.
    return replace(existing, description=description or existing.description,
                   revision=existing.revision + 1, **fields)


def _forget(services: Services, key: str) -> None:
    try:
        services.blobs.delete(key)
    except MlbotError:
        log.warning("could not delete blob %s; it is unreferenced and safe to remove", key)


def _content_type(filename: str) -> str:
    return "text/csv; charset=utf-8" if filename.endswith(".csv") else "application/zip"

