"""Uploads too large for one API request: `POST /v1/datasets/{name}/upload-url`, then the file goes straight
to storage and is validated when it lands.

On AWS the answer is an S3 presigned POST (``url`` and ``fields``; S3 itself refuses a file over the upload
limit, content-length-range), the object lands under ``api-uploads/incoming/<tenant>/<id>/`` and S3's "Object
Created" event (EventBridge) brings it to the API function, which validates and stores it exactly as a chat
upload (bot.api.routes).
Where the store has no presigned form (the local backend, `mlbot serve`), the URL is the API's own
``POST /v1/uploads``, taking the same multipart form (``key`` names the upload, a one-time ``token`` stands in
for S3's signed policy) and validating in the request: a client written for one works against the other.

Each upload is a small JSON record at ``api-uploads/records/<tenant>/<id>.json``: waiting, then stored,
rejected (with every problem) or failed; `GET /v1/uploads/{id}` shows it to the key's tenant. The file is
deleted once read; a bucket lifecycle rule clears abandoned ones, and a departed tenant's go with it
(platform_core.retention).
"""
from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from platform_core.errors import BlobNotFound
from platform_core.ports import BlobStore
from platform_core.records import tenant_key

PREFIX = "api-uploads/"
INCOMING = PREFIX + "incoming/"
EXPIRES_S = 3600  # how long an upload URL takes a file
FILENAMES = {"application/zip": "upload.zip", "text/csv": "upload.csv"}
WAITING, STORED, REJECTED, FAILED, EXPIRED = "waiting", "stored", "rejected", "failed", "expired"


@dataclass
class Upload:
    upload_id: str
    tenant: str
    key_id: str
    name: str
    content_type: str
    description: str
    created_at: float
    expires_at: float
    max_bytes: int
    state: str = WAITING
    token: str = ""  # the local form's proof (S3's signed policy plays this part on AWS)
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def object_key(self) -> str:
        return f"{INCOMING}{tenant_key(self.tenant)}/{self.upload_id}/{self.filename}"

    @property
    def filename(self) -> str:
        return FILENAMES[self.content_type]

    def shown(self, now: float) -> dict[str, Any]:
        """What `GET /v1/uploads/{id}` answers: never the token. A file that never came is "expired"."""
        state = EXPIRED if self.state == WAITING and now > self.expires_at else self.state
        answer: dict[str, Any] = {"upload_id": self.upload_id, "dataset": self.name, "state": state,
                                  "expires_at": self.expires_at}
        message = self.message or {WAITING: "Waiting for the file: post it with the upload form.",
                                   EXPIRED: "No file came before the form expired; ask for a new one."}[state]
        answer["message"] = message
        if self.result:
            answer["result"] = self.result
        return answer


def start(blobs: BlobStore, *, tenant: str, key_id: str, name: str, content_type: str, description: str,
          max_bytes: int, own_url: str, now: float | None = None) -> tuple[Upload, str, dict[str, str]]:
    """A new waiting upload, recorded once, with where the client posts the file and the form fields to send
    with it (the file goes last, as ``file``): the store's presigned form when it has one, else this API's own
    target (``own_url``) with a one-time token kept in the record."""
    now = time.time() if now is None else now
    upload = Upload(upload_id=secrets.token_hex(12), tenant=tenant, key_id=key_id, name=name,
                    content_type=content_type, description=description, created_at=now,
                    expires_at=now + EXPIRES_S, max_bytes=max_bytes)
    presigned = blobs.upload_form(upload.object_key, content_type=content_type, max_bytes=max_bytes,
                                  expires_s=EXPIRES_S)
    if presigned is None:
        upload.token = secrets.token_urlsafe(24)
        presigned = own_url, {"key": upload.object_key, "Content-Type": content_type, "token": upload.token}
    save(blobs, upload)
    return upload, *presigned


def token_matches(upload: Upload, given: str) -> bool:
    return bool(upload.token) and hmac.compare_digest(upload.token.encode(), given.encode())


def load(blobs: BlobStore, tenant: str, upload_id: str) -> Upload | None:
    """``tenant``'s upload, or None (another tenant's is not there either)."""
    if not upload_id.isalnum():
        return None
    try:
        data = json.loads(blobs.get(_record_key(tenant, upload_id)))
    except BlobNotFound:
        return None
    upload = Upload(**data)
    return upload if upload.tenant == tenant else None


def save(blobs: BlobStore, upload: Upload) -> None:
    blobs.put(_record_key(upload.tenant, upload.upload_id), json.dumps(asdict(upload)).encode(), "application/json")


def landed(blobs: BlobStore, object_key: str) -> Upload | None:
    """The waiting upload an incoming object is the file of, or None (any other key, or one already handled:
    S3's events come at least once)."""
    if not object_key.startswith(INCOMING):
        return None
    folder, upload_id, filename = (object_key[len(INCOMING):].split("/") + ["", ""])[:3]
    if not upload_id.isalnum() or filename not in FILENAMES.values():
        return None
    try:
        upload = Upload(**json.loads(blobs.get(f"{PREFIX}records/{folder}/{upload_id}.json")))
    except BlobNotFound:
        return None
    return upload if upload.object_key == object_key and upload.state == WAITING else None


def delete_of_tenant(blobs: BlobStore, tenant: str) -> int:
    """Remove every upload record of ``tenant``, and any file still waiting; how many."""
    records = blobs.list(f"{PREFIX}records/{tenant_key(tenant)}/")
    for key in blobs.list(f"{INCOMING}{tenant_key(tenant)}/") + records:
        blobs.delete(key)
    return len(records)


def _record_key(tenant: str, upload_id: str) -> str:
    return f"{PREFIX}records/{tenant_key(tenant)}/{upload_id}.json"
