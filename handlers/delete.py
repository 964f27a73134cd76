"""`delete NAME confirm`: remove a dataset, every model trained on it and every input kept for feedback.

Only its owner may delete it, never while it is queued or training, and only with the word `confirm`
(a chat message is easy to send by mistake). The record goes first, so a failure half-way leaves only
unreferenced blobs behind, never a record pointing at nothing."""
from __future__ import annotations

from handlers.datasets import named_record
from handlers.commands import Button, Command, Reply
from handlers.feedback import kept_prefix, pending_prefix
from handlers.services import Services
from platform_core.errors import DatasetBusy, DatasetOwnedByAnother
from platform_core.records import BUSY_STATUSES, dataset_prefix, model_prefix


def handle_delete(cmd: Command, services: Services) -> Reply:
    record = named_record(cmd, services, "delete NAME confirm")
    name = record.name
    if record.owner != cmd.user:
        raise DatasetOwnedByAnother(name, record.owner)
    if record.training_status in BUSY_STATUSES:
        raise DatasetBusy(name, record.training_status)
    if cmd.args[1:2] != ("confirm",):
        return Reply(f"This deletes '{name}', its {record.model_version or 0} model version(s) and the inputs "
                     f"kept for feedback, for everyone in this workspace. To go ahead: delete {name} confirm",
                     ok=False, buttons=(Button(f"Delete {name}", f"delete {name} confirm"),))
    services.records.delete(cmd.tenant, name)
    prefixes = (dataset_prefix(cmd.tenant, name), model_prefix(cmd.tenant, name),
                pending_prefix(cmd.tenant, name), kept_prefix(cmd.tenant, name))
    removed = 0
    for prefix in prefixes:
        for key in services.blobs.list(prefix):
            services.blobs.delete(key)
            removed += 1
    return Reply(f"Deleted '{name}' and {removed} stored file(s), with every stored copy of them: no copy is kept.",
                 data={"deleted": name, "files": removed})
