"""`export NAME [VERSION]`: the dataset's model (its current version, or VERSION) as a zip that runs without
mlbot (platform_core.export), sent as a file. Anyone in the chat may: whoever can ask the bot for
predictions can already use the model."""
from __future__ import annotations

from handlers.commands import Command, Reply
from handlers.datasets import named_record
from handlers.models import requested_version
from handlers.replies import format_accuracy
from handlers.services import Services
from platform_core.export import export_model
from platform_core.models import stored_versions


def handle_export(cmd: Command, services: Services) -> Reply:
    record = named_record(cmd, services, "export NAME [VERSION]")
    version = None
    if len(cmd.args) > 1:
        version = requested_version(record.name, cmd.args[1],
                                    stored_versions(services.blobs, cmd.tenant, record.name))
    filename, data = export_model(services.blobs, record, version)
    shown = version or record.model_version
    accuracy = f", validation accuracy {format_accuracy(record.validation_accuracy)}" \
        if version in (None, record.model_version) else ""
    size = f"{len(data) / 1e6:.1f} MB" if len(data) >= 100_000 else f"{len(data) / 1e3:.0f} KB"
    return Reply(f"Here is '{record.name}' model version {shown}{accuracy}: {filename} ({size}). "
                 "Unzip it: README.md says what to pip install, then python mlbot_model.py runs it and answers "
                 "what I answer.",
                 data={"name": record.name, "version": shown, "file": filename, "bytes": len(data)},
                 file=(filename, data))
