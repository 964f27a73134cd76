"""Buttons whose command is too long for Telegram's callback data (64 bytes): kept server-side.

A button's command goes in its callback data as it is when it fits; otherwise the keyboard's long commands
are stored in one small blob, ``telegram-buttons/<token>`` (the chat they were sent to and when they
expire), and each such button carries ``k:<token>:<index>``. Cutting a command to 64 bytes would run a
different command ("feedback NAME ID 10" filed as class "1"). A pressed token button runs its command as if
typed; one that is unknown, expired or from another chat runs nothing and says to send the command again.
Data without the ``k:`` mark is a command, as buttons always carried (those already in chats keep working).
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Callable, Sequence

from platform_core.errors import BlobNotFound
from platform_core.ports import BlobStore

log = logging.getLogger(__name__)

MAX_CALLBACK_DATA = 64  # bytes, Telegram's limit
PREFIX = "telegram-buttons/"
MARK = "k:"
TTL_S = 7 * 24 * 3600
EXPIRED = ("That button has expired: buttons that carry a long command work for 7 days. "
           "Send the command again (type it, or use the buttons of a newer message).")
_DATA = re.compile(r"^k:([A-Za-z0-9_-]{8,32}):([0-9]{1,2})$")


class ButtonExpired(LookupError):
    """A pressed button whose stored command is gone, past its expiry, or not this chat's. The channel answers
    it with EXPIRED; it never leaves the Telegram adapter (so it is not one of platform_core.errors')."""

    def __init__(self, data: str, why: str) -> None:
        self.data, self.why = data, why
        super().__init__(why)


def fits(command: str) -> bool:
    """True when ``command`` can travel in callback data as it is (and cannot be taken for a token)."""
    return len(command.encode()) <= MAX_CALLBACK_DATA and not command.startswith(MARK)


def is_token(data: str) -> bool:
    return data.startswith(MARK)


class ButtonStore:
    """The long commands of sent keyboards, one blob per keyboard, each valid for ``ttl_s``."""

    def __init__(self, blobs: BlobStore, *, clock: Callable[[], float] = time.time, ttl_s: float = TTL_S,
                 new_token: Callable[[], str] = lambda: secrets.token_urlsafe(12)) -> None:
        self.blobs, self.clock, self.ttl_s, self.new_token = blobs, clock, ttl_s, new_token

    def callback_data(self, chat: str, commands: Sequence[str]) -> list[str]:
        """The callback data for each command of one keyboard sent to ``chat``."""
        long = [c for c in dict.fromkeys(commands) if not fits(c)]
        if not long:
            return list(commands)
        token = self.new_token()
        entry = {"chat": str(chat), "commands": long, "expires_at": self.clock() + self.ttl_s}
        self.blobs.put(PREFIX + token, json.dumps(entry).encode(), "application/json")
        return [c if fits(c) else f"{MARK}{token}:{long.index(c)}" for c in commands]

    def command(self, data: str, chat: str, *, same_tenant: Callable[[str], bool] | None = None) -> str:
        """The command behind token data pressed in ``chat``. Raises ButtonExpired. A button pressed in
        another chat counts when ``same_tenant(its chat)`` (a group that became a supergroup)."""
        match = _DATA.match(data)
        if match is None:
            raise ButtonExpired(data, "not a button token")
        token, index = match.group(1), int(match.group(2))
        try:
            entry = json.loads(self.blobs.get(PREFIX + token))
            command, expires, sent_to = entry["commands"][index], float(entry["expires_at"]), str(entry["chat"])
        except BlobNotFound:
            raise ButtonExpired(data, "unknown or removed token") from None
        except (ValueError, KeyError, IndexError, TypeError):
            log.warning("unreadable button entry %s", token)
            raise ButtonExpired(data, "unreadable entry") from None
        if self.clock() > expires:
            raise ButtonExpired(data, "expired")
        if sent_to != str(chat) and not (same_tenant and same_tenant(sent_to)):
            log.warning("button %s of chat %s pressed in chat %s: refused", token, sent_to, chat)
            raise ButtonExpired(data, "pressed in another chat")
        return str(command)
