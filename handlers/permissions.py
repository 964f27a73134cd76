"""Who may do what to a dataset in a shared chat.

Everyone in a workspace or group may list datasets, read their status and models, predict, and press the
feedback buttons (a candidate example changes nothing until a retrain). What deletes something or switches
the model that answers for everyone is for the dataset's owner (who uploaded it) or an admin of the chat
(a Slack workspace admin or owner, a Telegram group's creator or administrators; the one user of a private
chat or of the console):

| command | why it is guarded |
|---|---|
| `delete NAME confirm` | removes the dataset, its models and kept inputs |
| `upload NAME` over an existing dataset | replaces the data the next model learns from |
| `train NAME`, `retrain NAME` | a new model version becomes the one that answers |
| `rollback NAME [VERSION]` | switches the model that answers |
| `forget NAME` | wipes the feedback the group collected |
"""
from __future__ import annotations

from handlers.commands import Command
from platform_core.errors import NotOwnerOrAdmin
from platform_core.records import DatasetRecord

ACTIONS = {
    "delete": "delete it",
    "upload": "replace it",
    "train": "train a new model of it",
    "retrain": "retrain it",
    "rollback": "switch which of its models answers",
    "forget": "wipe its collected feedback",
}


def require_owner_or_admin(cmd: Command, record: DatasetRecord, verb: str | None = None) -> None:
    """Raise NotOwnerOrAdmin unless ``cmd`` comes from the dataset's owner or an admin of the chat (the
    channel's admin check runs only when the user is not the owner)."""
    if record.owner == cmd.user or cmd.is_admin():
        return
    raise NotOwnerOrAdmin(record.name, ACTIONS[verb or cmd.verb])
