"""`delete NAME confirm`: remove a dataset, every model trained on it and every input kept for feedback.

Only its owner may delete it, never while it is queued or training, and only with the word `confirm`
(a chat message is easy to send by mistake). platform_core.retention.remove_dataset does the deleting."""
from __future__ import annotations

from handlers.datasets import named_record
from handlers.commands import Button, Command, Reply
from handlers.services import Services
from handlers.permissions import require_owner_or_admin
from platform_core.errors import DatasetBusy
from platform_core.records import BUSY_STATUSES
from platform_core.retention import remove_dataset


def handle_delete(cmd: Command, services: Services) -> Reply:
    record = named_record(cmd, services, "delete NAME confirm")
    name = record.name
    require_owner_or_admin(cmd, record, "delete")
    if record.training_status in BUSY_STATUSES:
        raise DatasetBusy(name, record.training_status)
    if cmd.args[1:2] != ("confirm",):
        return Reply(f"This deletes '{name}', its {record.model_version or 0} model version(s) and the inputs "
                     f"kept for feedback, for everyone in this workspace. To go ahead: delete {name} confirm",
                     ok=False, buttons=(Button(f"Delete {name}", f"delete {name} confirm"),))
    removed = remove_dataset(services.records, services.blobs, cmd.tenant, name)
    return Reply(f"Deleted '{name}' and {removed} stored file(s), with every stored copy of them: no copy is kept.",
                 data={"deleted": name, "files": removed})
