"""`datasets` and `status NAME`: what a tenant has, and one dataset's record."""
from __future__ import annotations

from handlers.commands import Command, Reply
from handlers.replies import format_accuracy
from handlers.services import Services
from platform_core.errors import DatasetNotFound, UsageError
from platform_core.records import DatasetRecord, TrainingStatus, normalise_name
from platform_core.validation.report import plural


def handle_datasets(cmd: Command, services: Services) -> Reply:
    """List the tenant's datasets with status and accuracies."""
    records = services.records.list(cmd.tenant)
    data = {"datasets": [r.as_dict() for r in records]}
    if not records:
        return Reply("No datasets yet. Send a zip of images or a CSV with: upload NAME", data=data)
    lines = [f"{plural(len(records), 'dataset')}:"]
    lines += [_summary_line(r) for r in records]
    return Reply("\n".join(lines), data=data)


def named_record(cmd: Command, services: Services, usage: str) -> DatasetRecord:
    """The tenant's dataset named by the command's first word; UsageError without one, DatasetNotFound."""
    if not cmd.args:
        raise UsageError(usage)
    name = normalise_name(cmd.args[0])
    record = services.records.get(cmd.tenant, name)
    if record is None:
        raise DatasetNotFound(name)
    return record


def handle_status(cmd: Command, services: Services) -> Reply:
    """Show one dataset's record."""
    record = named_record(cmd, services, "status NAME")
    classes = ", ".join(f"{c} ({n})" for c, n in record.class_counts.items())
    lines = [
        f"{record.name}: {record.kind} dataset, version {record.dataset_version}, owner {record.owner}",
        f"Classes: {classes}",
        f"Status: {record.training_status}",
        f"Accuracy: train {format_accuracy(record.training_accuracy)}, "
        f"validation {format_accuracy(record.validation_accuracy)}",
        f"Updated: {record.updated_at}",
    ]
    if record.model_version:
        lines.insert(4, f"Model: version {record.model_version}")
    if record.training_status == TrainingStatus.FAILED.value and record.training_error:
        lines.insert(4, f"Last training failed: {record.training_error}")
    if record.description:
        lines.insert(1, f"Description: {record.description}")
    return Reply("\n".join(lines), data=record.as_dict())


def _summary_line(r: DatasetRecord) -> str:
    total = sum(r.class_counts.values())
    return (f"- {r.name} ({r.kind}, {len(r.class_counts)} classes, {total} examples): {r.training_status}; "
            f"validation accuracy {format_accuracy(r.validation_accuracy)}")
