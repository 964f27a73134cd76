"""`models NAME` and `rollback NAME [VERSION]`: every trained version of a dataset's model, and choosing
which one answers predictions. Retraining adds a version and never overwrites one."""
from __future__ import annotations

from dataclasses import replace

from handlers.datasets import named_record
from handlers.commands import Button, Command, Reply
from handlers.replies import format_accuracy
from handlers.permissions import require_owner_or_admin
from handlers.services import Services
from platform_core.errors import ModelNotTrained, UnknownVersion
from platform_core.models import stored_versions, version_path, version_summary
from platform_core.recordkeeping import update_record


def handle_models(cmd: Command, services: Services) -> Reply:
    """Every stored version, newest first, with its accuracies; the current one marked."""
    record = named_record(cmd, services, "models NAME")
    versions = stored_versions(services.blobs, cmd.tenant, record.name)
    if not versions:
        raise ModelNotTrained(record.name, record.training_status)
    summaries = [version_summary(services.blobs, cmd.tenant, record.name, v) for v in reversed(versions)]
    lines = [f"Models of '{record.name}' (newest first):"]
    for s in summaries:
        mark = " (current)" if s["version"] == record.model_version else ""
        lines.append(f"- version {s['version']}{mark}: validation {format_accuracy(s['validation_accuracy'])}, "
                     f"train {format_accuracy(s['train_accuracy'])}, {s['recipe']} recipe, trained {s['created_at'] or '-'}")
    older = [s["version"] for s in summaries if s["version"] != record.model_version][:3]
    buttons = tuple(Button(f"Use version {v}", f"rollback {record.name} {v}") for v in older)
    return Reply("\n".join(lines), data={"name": record.name, "current": record.model_version, "versions": summaries},
                 buttons=buttons)


def requested_version(name: str, word: str, versions: list[int]) -> int:
    """The stored version a user typed ('3' or 'v3', ASCII digits only); UnknownVersion otherwise."""
    wanted = word.lower().lstrip("v")
    if not (wanted.isascii() and wanted.isdigit()) or int(wanted) not in versions:
        raise UnknownVersion(name, word, versions)
    return int(wanted)


def handle_rollback(cmd: Command, services: Services) -> Reply:
    """Make a stored version current (default: the newest one older than the current)."""
    record = named_record(cmd, services, "rollback NAME [VERSION]")
    require_owner_or_admin(cmd, record, "rollback")
    versions = stored_versions(services.blobs, cmd.tenant, record.name)
    if len(cmd.args) > 1:
        version = requested_version(record.name, cmd.args[1], versions)
    else:
        older = [v for v in versions if v < (record.model_version or 0)]
        if not older:
            raise UnknownVersion(record.name, "older than the current one", versions)
        version = older[-1]
    summary = version_summary(services.blobs, cmd.tenant, record.name, version)
    update_record(services.records, cmd.tenant, record.name, lambda r: replace(
        r, model_path=version_path(cmd.tenant, record.name, version), model_version=version,
        training_accuracy=summary["train_accuracy"], validation_accuracy=summary["validation_accuracy"]))
    return Reply(f"'{record.name}' now answers with model version {version} (validation "
                 f"{format_accuracy(summary['validation_accuracy'])}). Newer versions are kept: models {record.name}",
                 data={"name": record.name, "model_version": version})
