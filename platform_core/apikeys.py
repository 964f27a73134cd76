"""API keys: how code outside the chat acts for one tenant (a Slack workspace, a Telegram chat, a console
user) through the REST API.

A key reads ``mlbot_<id>_<secret>``: the id names it (in `apikey list`, in logs, in `apikey revoke ID`), the
secret (32 random bytes) proves it. Only a salted hash of the secret is stored, so the key is shown once, when
it is made; a revoked key never works again (the record is read on every request, so at once).

Stored in the blob store (S3 under ``api-keys/``, files locally): ``api-keys/ids/<id>.json`` holds the record,
``api-keys/tenants/<tenant>/<id>`` lists a tenant's keys. ``reply_to`` is the chat the key was made in: where
training notices for jobs started with it go.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from platform_core.errors import ApiKeyRefused, BlobNotFound, UnknownApiKey, UsageError
from platform_core.jobs import ReplyTo
from platform_core.ports import BlobStore
from platform_core.records import tenant_key, utc_now

PREFIX = "api-keys/"
_KEY = re.compile(r"^mlbot_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
MAX_LABEL = 60


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant: str
    label: str
    created_by: str
    created_at: str
    salt: str
    digest: str
    reply_to: dict[str, str] | None = None
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def shown(self) -> dict[str, Any]:
        """What `apikey list` and the API show of a key: never its salt or digest."""
        return {"id": self.key_id, "label": self.label, "created_by": self.created_by,
                "created_at": self.created_at, "revoked_at": self.revoked_at}

    def destination(self) -> ReplyTo | None:
        return ReplyTo.from_dict(self.reply_to) if self.reply_to else None


def create_key(blobs: BlobStore, tenant: str, created_by: str, label: str = "",
               reply_to: ReplyTo | None = None) -> tuple[ApiKey, str]:
    """A new key of ``tenant``: its record, and the key itself (shown once; only its hash is kept)."""
    label = " ".join(label.split())
    if len(label) > MAX_LABEL:
        raise UsageError(f"apikey new [LABEL], with a label of at most {MAX_LABEL} characters")
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    record = ApiKey(key_id, tenant, label, created_by, utc_now(), salt, _digest(salt, secret),
                    reply_to.as_dict() if reply_to else None)
    blobs.put(_record_key(key_id), json.dumps(asdict(record), sort_keys=True).encode(), "application/json")
    blobs.put(_index_key(tenant, key_id), b"", "text/plain")
    return record, f"mlbot_{key_id}_{secret}"


def authenticate(blobs: BlobStore, presented: str | None) -> ApiKey:
    """The key's record if ``presented`` is a live key; ApiKeyRefused otherwise (the same for a malformed and
    an unknown key, so nothing about other keys leaks)."""
    match = _KEY.match((presented or "").strip())
    if not match:
        raise ApiKeyRefused("is missing or malformed" if not presented else "is not valid")
    record = _load(blobs, match.group(1))
    if record is None or not hmac.compare_digest(record.digest, _digest(record.salt, match.group(2))):
        raise ApiKeyRefused("is not valid")
    if record.revoked:
        raise ApiKeyRefused(f"{record.key_id} was revoked on {record.revoked_at}", revoked=True)
    return record


def keys_of(blobs: BlobStore, tenant: str) -> list[ApiKey]:
    """The tenant's keys, oldest first (revoked ones included, marked)."""
    found = []
    for index in blobs.list(f"{PREFIX}tenants/{tenant_key(tenant)}/"):
        record = _load(blobs, index.rsplit("/", 1)[-1])
        if record is not None and record.tenant == tenant:
            found.append(record)
    return sorted(found, key=lambda k: (k.created_at, k.key_id))


def key_of(blobs: BlobStore, tenant: str, key_id: str) -> ApiKey:
    """One of the tenant's keys by id; UnknownApiKey for any other id (another tenant's included)."""
    record = _load(blobs, key_id.lower()) if re.fullmatch(r"[0-9a-fA-F]{16}", key_id or "") else None
    if record is None or record.tenant != tenant:
        raise UnknownApiKey(key_id)
    return record


def revoke_key(blobs: BlobStore, tenant: str, key_id: str) -> ApiKey:
    """Revoke one of the tenant's keys (at once: every request reads the record); revoking twice is harmless."""
    record = key_of(blobs, tenant, key_id)
    if record.revoked:
        return record
    revoked = ApiKey(**{**asdict(record), "revoked_at": utc_now()})
    blobs.put(_record_key(record.key_id), json.dumps(asdict(revoked), sort_keys=True).encode(), "application/json")
    return revoked


def delete_keys_of(blobs: BlobStore, tenant: str) -> int:
    """Remove every key of a tenant (a departed workspace's data goes with it)."""
    removed = 0
    for index in blobs.list(f"{PREFIX}tenants/{tenant_key(tenant)}/"):
        blobs.delete(_record_key(index.rsplit("/", 1)[-1]))
        blobs.delete(index)
        removed += 1
    return removed


def _load(blobs: BlobStore, key_id: str) -> ApiKey | None:
    try:
        return ApiKey(**json.loads(blobs.get(_record_key(key_id))))
    except BlobNotFound:
        return None


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def _record_key(key_id: str) -> str:
    return f"{PREFIX}ids/{key_id}.json"


def _index_key(tenant: str, key_id: str) -> str:
    return f"{PREFIX}tenants/{tenant_key(tenant)}/{key_id}"
