"""API keys (platform_core.apikeys, `apikey ...` in the chat, `mlbot apikey ...`): made by an admin of the
chat, shown once and to its maker only, stored as a salted hash, one tenant's, revoked at once."""
from __future__ import annotations

import json

import pytest

from handlers.chat import dispatch
from handlers.commands import Command
from platform_core.apikeys import PREFIX, authenticate, create_key, keys_of
from platform_core.errors import ApiKeyRefused
from platform_core.jobs import ReplyTo
from platform_core.retention import depart, purge_departed
from tests.memory import MemoryBackend, memory_services

TENANT = "slack:TKEYS"


@pytest.fixture
def services():
    return memory_services(MemoryBackend())


def say(services, words: str, user: str = "UADMIN", admin: bool = True, reply_to: ReplyTo | None = None):
    parts = words.split()
    return dispatch(Command(parts[0], TENANT, user, tuple(parts[1:]), admin=admin), services, reply_to=reply_to)


def test_an_admin_makes_a_key_that_is_shown_once_privately_and_stored_only_as_a_salted_hash(services) -> None:
    made = say(services, "apikey new ci pipeline", reply_to=ReplyTo("slack", "C1", team="TKEYS"))
    assert made.ok and made.private and made.data["label"] == "ci pipeline"
    key = made.data["key"]
    assert key.startswith(f"mlbot_{made.data['id']}_") and key in made.text
    stored = b"".join(services.blobs.get(k) for k in services.blobs.list(PREFIX))
    assert key.encode() not in stored and key.split("_")[-1].encode() not in stored  # only a hash of it
    record = authenticate(services.blobs, key)
    assert record.tenant == TENANT and record.created_by == "UADMIN"
    assert record.destination() == ReplyTo("slack", "C1", team="TKEYS")  # notices of its jobs go there
    listed = say(services, "apikey list", user="UMEMBER", admin=False)
    assert listed.ok and not listed.private and made.data["id"] in listed.text and key not in listed.text
    assert listed.data["keys"][0].keys() == {"id", "label", "created_by", "created_at", "revoked_at"}


def test_a_member_who_is_not_an_admin_cannot_make_a_key(services) -> None:
    refused = say(services, "apikey new", user="UMEMBER", admin=False)
    assert not refused.ok and refused.data["error"] == "not_allowed" and "Only an admin" in refused.text
    assert keys_of(services.blobs, TENANT) == []


@pytest.mark.parametrize("presented, why", [(None, "missing"), ("", "missing"), ("Bearer x", "not valid"),
                                            ("mlbot_0123456789abcdef_" + "A" * 43, "not valid")])
def test_a_missing_malformed_or_unknown_key_is_refused(services, presented, why) -> None:
    with pytest.raises(ApiKeyRefused) as refused:
        authenticate(services.blobs, presented)
    assert why in refused.value.user_message()


def test_a_revoked_key_stops_at_once_and_only_its_maker_or_an_admin_may_revoke(services) -> None:
    made = say(services, "apikey new", user="UALICE", admin=True)
    other = say(services, f"apikey revoke {made.data['id']}", user="UMALLORY", admin=False)
    assert not other.ok and other.data["error"] == "not_allowed"
    authenticate(services.blobs, made.data["key"])  # still works
    done = say(services, f"apikey revoke {made.data['id']}", user="UALICE", admin=False)
    assert done.ok
    with pytest.raises(ApiKeyRefused, match="revoked"):
        authenticate(services.blobs, made.data["key"])
    assert "revoked on" in say(services, "apikey list").text
    assert say(services, "apikey revoke 0123456789abcdef").data["error"] == "not_found"


def test_another_tenants_key_is_not_listed_nor_revocable_here(services) -> None:
    theirs, _ = create_key(services.blobs, "slack:TOTHER", "UBOB")
    assert say(services, "apikey list").data["keys"] == []
    assert say(services, f"apikey revoke {theirs.key_id}").data["error"] == "not_found"


def test_a_departed_workspaces_keys_and_uploads_go_with_its_data(services) -> None:
    from platform_core import uploads

    made = say(services, "apikey new")
    waiting, _, _ = uploads.start(services.blobs, tenant=TENANT, key_id="0" * 16, name="big",
                                  content_type="text/csv", description="", max_bytes=10, own_url="http://x/v1/uploads")
    services.blobs.put(waiting.object_key, b"text,label\n")
    theirs, _, _ = uploads.start(services.blobs, tenant="slack:TOTHER", key_id="1" * 16, name="big",
                                 content_type="text/csv", description="", max_bytes=10, own_url="http://x/v1/uploads")
    depart(services.blobs, TENANT, 0.0, "uninstalled")
    assert purge_departed(services.records, services.blobs, 31 * 86400.0, 30 * 86400.0) == [TENANT]
    assert services.blobs.list(PREFIX) == []
    assert services.blobs.list(uploads.PREFIX) == [f"{uploads.PREFIX}records/slack:TOTHER/{theirs.upload_id}.json"]
    with pytest.raises(ApiKeyRefused):
        authenticate(services.blobs, made.data["key"])


def test_mlbot_apikey_create_list_and_revoke(services, monkeypatch, capsys) -> None:
    from bot.console import cli

    monkeypatch.setattr(cli, "build_services", lambda settings: services)
    monkeypatch.setattr(cli, "console_tenant", lambda: ("console:ada", "ada"))
    assert cli.main(["apikey", "create", "--label", "notebook", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert set(made) == {"id", "key"} and authenticate(services.blobs, made["key"]).tenant == "console:ada"
    assert cli.main(["apikey", "list"]) == 0 and made["id"] in capsys.readouterr().out
    assert cli.main(["apikey", "revoke", made["id"]]) == 0
    with pytest.raises(ApiKeyRefused):
        authenticate(services.blobs, made["key"])
    capsys.readouterr()
    assert cli.main(["apikey", "revoke"]) == 1 and "Usage: apikey revoke ID" in capsys.readouterr().out
