"""The messages between channel adapters and use cases: plain dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Attachment:
    """A file the user sent, already downloaded by the adapter."""

    filename: str
    data: bytes | Path  # a Path lets validation refuse an oversized file before reading it


@dataclass(frozen=True)
class Command:
    """One user request: ``verb`` plus words, from ``user`` inside ``tenant``.

    ``admin`` says whether the user is an admin of the chat (a Slack workspace admin or owner, a Telegram
    group's creator or administrator; the one user of a private chat or the console): a bool, or a check
    the channel runs only when a command needs it (handlers.permissions)."""

    verb: str
    tenant: str
    user: str
    args: tuple[str, ...] = ()
    attachment: Attachment | None = None
    admin: bool | Callable[[], bool] = False

    def is_admin(self) -> bool:
        return bool(self.admin()) if callable(self.admin) else bool(self.admin)


@dataclass(frozen=True)
class Button:
    """A choice shown under a reply; pressing it sends ``command`` as if the user had typed it."""

    label: str
    command: str


@dataclass
class Reply:
    """What the channel shows the user; ``data`` is the machine-readable form (CLI --json).

    ``image`` (PNG bytes, e.g. a confusion matrix) is sent beside the text as ``image_name``; ``file``
    (name, bytes), e.g. a CSV of batch predictions, is sent as a document."""

    text: str
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None
    image_name: str = "image.png"
    buttons: tuple[Button, ...] = ()
    file: tuple[str, bytes] | None = None
    private: bool = False  # for the asker's eyes only (a new API key): never posted where others read it
