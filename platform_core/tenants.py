"""A tenant that carries on under a new id: an alias from the new id to the tenant whose data it keeps.

A Telegram group upgraded to a supergroup gets a new chat id, so its tenant id `telegram:<chat id>` changes
while the people, their datasets and models stay. Rather than copy every record and blob to the new id (the
chat functions may not write models, a dataset still training would lose its record under the trainer, and
the old tenant's API keys would point at nothing), the new id is linked to the old one: one small blob,
``tenant-aliases/<new tenant>``, read when a request comes from a tenant that may be an alias. Links never
change once written and never chain (a link to an alias points at that alias's tenant), so a lookup is one
read and a cached answer stays true.
"""
from __future__ import annotations

import json
import logging

from platform_core.errors import BlobNotFound
from platform_core.ports import BlobStore, DatasetRepository
from platform_core.records import tenant_key

log = logging.getLogger(__name__)
ALIASES = "tenant-aliases/"


def alias_key(tenant: str) -> str:
    """Where the alias of ``tenant`` is kept."""
    return ALIASES + tenant_key(tenant)


def resolve_tenant(blobs: BlobStore, tenant: str) -> str:
    """The tenant whose data ``tenant`` uses: the one it is linked to, or itself."""
    try:
        raw = blobs.get(alias_key(tenant))
    except BlobNotFound:
        return tenant
    try:
        target = json.loads(raw)["tenant"]
        if not isinstance(target, str) or not target:
            raise ValueError("empty tenant")
    except (ValueError, KeyError, TypeError):
        log.error("unreadable tenant alias %s: %s answers for itself until an operator fixes it",
                  alias_key(tenant), tenant)
        return tenant
    return target


def link_tenant(blobs: BlobStore, new: str, old: str, *, records: DatasetRepository | None = None) -> str:
    """Make ``new`` use the data of ``old`` (of the tenant ``old`` is itself linked to); returns the tenant
    ``new`` now answers for. Linking again is harmless; a link already written is never replaced, and a link
    that would make a loop is refused (both logged). With ``records``, datasets ``new`` already had of its own
    are logged: the link hides them."""
    target = resolve_tenant(blobs, old)
    current = resolve_tenant(blobs, new)
    if current != new:
        if current != target:
            log.error("tenant %s is linked to %s already; not linking it to %s", new, current, target)
        return current
    if target == new:
        if old != new:
            log.error("linking tenant %s to %s would make a loop; not linked", new, old)
        return new
    if records is not None:
        hidden = [r.name for r in records.list(new)]
        if hidden:
            log.warning("tenant %s had datasets of its own before it was linked to %s: %s (kept, not reachable)",
                        new, target, ", ".join(hidden))
    blobs.put(alias_key(new), json.dumps({"tenant": target, "from": old}).encode(), "application/json")
    log.info("tenant %s now uses the datasets of %s", new, target)
    return target
