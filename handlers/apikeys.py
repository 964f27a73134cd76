"""`apikey new [LABEL]`, `apikey list`, `apikey revoke ID`: keys for the REST API (platform_core.apikeys).

A key acts for the whole workspace or group, so making one is for an admin of the chat (in a private chat,
its one user); a key is shown once, to its maker only (the reply is private: a Slack ephemeral message, a
Telegram private message); revoking is for its maker or an admin. Anyone in the chat may list the keys
(ids, labels, who made them: never a key)."""
from __future__ import annotations

from handlers.commands import Command, Reply
from handlers.services import Services
from platform_core.apikeys import create_key, key_of, keys_of, revoke_key
from platform_core.errors import NotOwnerOrAdmin, UsageError
from platform_core.jobs import ReplyTo

USAGE = "apikey new [LABEL] | apikey list | apikey revoke ID"


def handle_apikey(cmd: Command, services: Services, *, reply_to: ReplyTo | None = None) -> Reply:
    action = cmd.args[0].lower() if cmd.args else ""
    if action in ("new", "create"):
        if not cmd.is_admin():
            raise NotOwnerOrAdmin(None, "make API keys (a key acts for everyone here)")
        record, key = create_key(services.blobs, cmd.tenant, cmd.user, " ".join(cmd.args[1:]), reply_to)
        return Reply(f"Your API key {record.key_id}{f' ({record.label})' if record.label else ''}, shown this once: "
                     f"{key}\nSend it as 'Authorization: Bearer <key>' to the REST API; it acts for this "
                     f"whole chat. Keep it secret; 'apikey revoke {record.key_id}' stops it at once.",
                     data={"id": record.key_id, "key": key, "label": record.label}, private=True)
    if action in ("list", "ls"):
        keys = keys_of(services.blobs, cmd.tenant)
        if not keys:
            return Reply("No API keys here yet. An admin makes one with: apikey new [LABEL]", data={"keys": []})
        lines = [f"{len(keys)} API key(s):"] + [
            f"- {k.key_id}{f' ({k.label})' if k.label else ''}, made by {k.created_by} on {k.created_at}"
            + (f", revoked on {k.revoked_at}" if k.revoked else "") for k in keys]
        return Reply("\n".join(lines), data={"keys": [k.shown() for k in keys]})
    if action == "revoke":
        if len(cmd.args) != 2:
            raise UsageError("apikey revoke ID ('apikey list' shows the ids)")
        key = key_of(services.blobs, cmd.tenant, cmd.args[1])
        if key.created_by != cmd.user and not cmd.is_admin():
            raise NotOwnerOrAdmin(None, "revoke a key someone else made")
        revoked = revoke_key(services.blobs, cmd.tenant, key.key_id)
        return Reply(f"Revoked API key {revoked.key_id}: it stops working now, everywhere.",
                     data={"id": revoked.key_id, "revoked_at": revoked.revoked_at})
    raise UsageError(USAGE)
