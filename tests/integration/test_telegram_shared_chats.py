"""Telegram in shared chats and over time: buttons whose command is longer than Telegram's 64 bytes of
callback data, a group upgraded to a supergroup (a new chat id), and who is an admin of a group. The same
world as tests/integration/test_telegram.py: the webhook channel on the in-memory fakes and a fake Bot API."""
from __future__ import annotations

import time
from typing import Any

import pytest

from bot.telegram import webhook
from platform_core.apikeys import authenticate, keys_of
from bot.telegram.buttons import EXPIRED, MAX_CALLBACK_DATA, PREFIX, TTL_S
from bot.telegram.sender import TelegramSender
from handlers.commands import Button, Command, Reply
from platform_core.errors import StorageError
from platform_core.jobs import ReplyTo
from platform_core.records import kept_prefix
from platform_core.tenants import ALIASES, resolve_tenant
from tests.fake_telegram import FakeTelegram
from tests.integration.test_telegram import ADA, BOB, World, command, fake, update, world  # noqa: F401 (fixtures)
from tests.integration.test_trainer_runner import _zip
from trainer_ec2.runner import drain

LONG = "a-dataset-name-that-is-forty-chars-long1"  # the longest name a dataset may have
GROUP, SUPERGROUP = -4001, -1004001  # a basic group, and the supergroup it becomes
OWNER, ADMIN, MEMBER = 3003, 4004, 5005


def pressed(data: str, *, chat: int = ADA, user: int | None = None, kind: str | None = None) -> dict[str, Any]:
    """A callback query from a button with ``data`` under a bot message in ``chat``."""
    press = update("callback_query", chat=chat)
    press["callback_query"]["data"] = data
    if kind is not None:
        press["callback_query"]["message"]["chat"]["type"] = kind
    if user is not None:
        press["callback_query"]["from"]["id"] = user
    return press


def said_in(chat: int, text: str, *, user: int, kind: str = "supergroup", **fields: Any) -> dict[str, Any]:
    """A message ``text`` from ``user`` in the group ``chat``."""
    data = command(text, chat=chat)
    data["message"]["chat"] = {"id": chat, "type": kind, "title": "ML study group"}
    data["message"]["from"]["id"] = user
    data["message"].update(fields)
    return data


def buttons_sent(world: World) -> list[dict[str, str]]:
    markup = world.fake.sent("sendMessage", "sendPhoto", "sendDocument")[-1].params["reply_markup"]
    return [b for row in markup["inline_keyboard"] for b in row]


# -- buttons with long commands -----------------------------------------------------------------------------


@pytest.fixture
def long_trained(world: World) -> World:
    """A dataset with the longest name allowed, trained, in Ada's chat."""
    world.upload(LONG)
    world.said(command(f"/train {LONG}"))
    drain(world.ctx)
    world.fake.calls.clear()
    return world


def test_a_correction_button_of_a_long_dataset_name_files_the_class_it_shows(long_trained: World) -> None:
    world = long_trained
    world.post(world.photo((250, 5, 5), f"/predict {LONG}"))
    buttons = buttons_sent(world)
    assert all(len(b["callback_data"].encode()) <= MAX_CALLBACK_DATA for b in buttons)
    wrong = next(b for b in buttons if b["text"].startswith("No, it's "))
    label = wrong["text"].removeprefix("No, it's ")
    assert f"kept as an example of '{label}'" in world.said(pressed(wrong["callback_data"]))
    kept = world.services.blobs.list(kept_prefix(f"telegram:{ADA}", LONG))
    assert [key.split("/")[-2] for key in kept] == [label]
    prediction_id = kept[0].split("/")[-1]
    assert len(f"feedback {LONG} {prediction_id} {label}".encode()) > MAX_CALLBACK_DATA  # the case at issue


def test_commands_that_fit_stay_in_the_button_and_long_ones_are_kept_under_one_token(world: World) -> None:
    store = world.sender.buttons
    short, long = "status colours", f"feedback {LONG} 0123456789ab green"
    data = store.callback_data(str(ADA), [short, long, long + "x"])
    assert data[0] == short
    assert data[1] != data[2] and all(len(d.encode()) <= MAX_CALLBACK_DATA for d in data)
    assert len(world.services.blobs.list(PREFIX)) == 1  # one blob for the keyboard, not one per button
    assert store.command(data[1], str(ADA)) == long and store.command(data[2], str(ADA)) == long + "x"
    assert store.callback_data(str(ADA), [short]) == [short] and len(world.services.blobs.list(PREFIX)) == 1


def test_a_pressed_button_older_than_its_expiry_says_to_send_the_command_again(long_trained: World) -> None:
    world = long_trained
    world.post(world.photo((250, 5, 5), f"/predict {LONG}"))
    wrong = next(b for b in buttons_sent(world) if b["text"].startswith("No, it's "))
    issued = time.time()
    world.sender.buttons.clock = lambda: issued + TTL_S + 60
    reply = world.said(pressed(wrong["callback_data"]))
    assert reply == EXPIRED and "send the command again" in reply.lower()
    assert world.services.blobs.list(kept_prefix(f"telegram:{ADA}", LONG)) == []
    assert world.fake.sent("answerCallbackQuery")  # the spinner stops too
    world.sender.buttons.clock = lambda: issued + TTL_S - 60  # within its week the same button works
    assert "kept as an example" in world.said(pressed(wrong["callback_data"]))


@pytest.mark.parametrize("data", ["k:unknowntoken:0", "k:", "k:../../datasets:1"])
def test_a_token_button_that_is_unknown_says_to_send_the_command_again(world: World, data: str) -> None:
    assert world.said(pressed(data)) == EXPIRED


def test_a_token_button_pressed_in_another_chat_runs_nothing(long_trained: World) -> None:
    world = long_trained
    world.post(world.photo((250, 5, 5), f"/predict {LONG}"))
    wrong = next(b for b in buttons_sent(world) if b["text"].startswith("No, it's "))
    assert world.said(pressed(wrong["callback_data"], chat=BOB)) == EXPIRED
    assert world.services.blobs.list(kept_prefix(f"telegram:{ADA}", LONG)) == []
    assert "kept as an example" in world.said(pressed(wrong["callback_data"], chat=ADA))


def test_an_old_style_button_with_the_command_inline_still_works(world: World) -> None:
    world.upload()
    assert "Training Not Started" in world.said(pressed("status colours"))


def test_a_sender_without_a_button_store_leaves_an_overlong_button_off_rather_than_cut_it(
        world: World, fake: FakeTelegram) -> None:
    plain = TelegramSender(world.settings)  # as the notifier builds it
    try:
        plain.send(ReplyTo("telegram", str(ADA)), Reply("done", buttons=(
            Button("Status", "status colours"), Button("Long", f"feedback {LONG} 0123456789ab green"))))
    finally:
        plain.close()
    assert buttons_sent(world) == [{"text": "Status", "callback_data": "status colours"}]


def test_when_the_button_store_fails_the_reply_still_goes_out_with_the_buttons_that_fit(world: World,
                                                                                       monkeypatch) -> None:
    def refused(key: str, *args: Any) -> None:
        raise StorageError("put", key, "AccessDenied")
    monkeypatch.setattr(world.services.blobs, "put", refused)
    world.sender.send(ReplyTo("telegram", str(ADA)), Reply("done", buttons=(
        Button("Status", "status colours"), Button("Long", f"feedback {LONG} 0123456789ab green"))))
    assert world.fake.sent("sendMessage")[-1].params["text"] == "done"
    assert buttons_sent(world) == [{"text": "Status", "callback_data": "status colours"}]


# -- a group upgraded to a supergroup -----------------------------------------------------------------------


def migrated_to(old: int, new: int) -> dict[str, Any]:
    """The service message Telegram posts in the old group."""
    data = said_in(old, "/x", user=OWNER, kind="group", migrate_to_chat_id=new)
    for field in ("text", "entities"):
        del data["message"][field]
    return data


def migrated_from(old: int, new: int) -> dict[str, Any]:
    """The service message Telegram posts in the new supergroup."""
    data = said_in(new, "/x", user=OWNER, migrate_from_chat_id=old)
    for field in ("text", "entities"):
        del data["message"][field]
    return data


def group_world(world: World) -> World:
    """'colours' uploaded in the basic group by its owner, and trained."""
    doc = update("document_upload", chat=GROUP, caption="/upload colours")
    doc["message"]["chat"] = {"id": GROUP, "type": "group", "title": "ML study group"}
    doc["message"]["from"]["id"] = OWNER
    data = _zip()
    doc["message"]["document"].update(file_id="zip-group", file_size=len(data))
    world.fake.add_file("zip-group", data)
    assert "Stored image dataset 'colours'" in world.said(doc)
    assert "Queued" in world.said(said_in(GROUP, "/train colours", user=OWNER, kind="group"))
    drain(world.ctx)
    return world


def member_photo(world: World, chat: int) -> dict[str, Any]:
    """A member's photo captioned '/predict colours' in ``chat``."""
    data = world.photo((250, 5, 5), "/predict colours", chat=chat)
    data["message"]["from"]["id"] = MEMBER
    return data


@pytest.mark.parametrize("service_messages", [
    pytest.param(lambda: [migrated_to(GROUP, SUPERGROUP), migrated_from(GROUP, SUPERGROUP)], id="both"),
    pytest.param(lambda: [migrated_to(GROUP, SUPERGROUP)], id="only-in-the-old-group"),
    pytest.param(lambda: [migrated_from(GROUP, SUPERGROUP)], id="only-in-the-new-supergroup")])
def test_after_a_group_becomes_a_supergroup_its_datasets_answer_in_the_supergroup(world: World,
                                                                                   service_messages) -> None:
    group_world(world)
    for message in service_messages():
        assert world.post(message) == (200, {"ok": True})
    assert "colours" in world.said(said_in(SUPERGROUP, "/datasets", user=MEMBER))
    assert "Training Successful" in world.said(said_in(SUPERGROUP, "/status colours", user=MEMBER))
    assert world.said(member_photo(world, SUPERGROUP)).startswith("red (")
    assert world.fake.sent("sendMessage")[-1].params["chat_id"] == str(SUPERGROUP)


def test_the_migration_handled_twice_is_harmless_and_says_nothing(world: World) -> None:
    group_world(world)
    world.fake.calls.clear()
    for _ in range(2):  # Telegram's two service messages, each delivered twice (fresh update ids)
        for message in (migrated_to(GROUP, SUPERGROUP), migrated_from(GROUP, SUPERGROUP)):
            assert world.post(message) == (200, {"ok": True})
    assert world.fake.calls == []
    assert world.services.blobs.list(ALIASES) == [f"{ALIASES}telegram:{SUPERGROUP}"]
    assert resolve_tenant(world.services.blobs, f"telegram:{SUPERGROUP}") == f"telegram:{GROUP}"
    assert [r.name for r in world.services.records.list(f"telegram:{GROUP}")] == ["colours"]
    assert "colours" in world.said(said_in(SUPERGROUP, "/datasets", user=MEMBER))


def test_a_long_button_sent_in_the_group_works_in_the_supergroup_it_became(world: World) -> None:
    group_world(world)
    data = world.sender.buttons.callback_data(str(GROUP), ["datasets " + "x" * 60])[0]
    world.post(migrated_from(GROUP, SUPERGROUP))
    assert "colours" in world.said(pressed(data, chat=SUPERGROUP, user=MEMBER))
    assert world.said(pressed(data, chat=-1009999, user=MEMBER)) == EXPIRED  # another supergroup: refused


def test_a_supergroup_that_never_was_a_group_keeps_its_own_datasets(world: World) -> None:
    group_world(world)
    world.post(migrated_from(GROUP, SUPERGROUP))
    other = -1009999
    assert "No datasets yet" in world.said(said_in(other, "/datasets", user=MEMBER))
    assert "There is no dataset named 'colours' here" in world.said(said_in(other, "/status colours", user=MEMBER))


def test_a_notice_for_the_old_group_is_posted_in_the_supergroup(world: World) -> None:
    world.fake.migrate(GROUP, SUPERGROUP)
    ref = world.sender.send(ReplyTo("telegram", str(GROUP), answering="15"), Reply("Training 'colours' finished"))
    sent = world.fake.sent("sendMessage")
    assert [c.params["chat_id"] for c in sent] == [str(GROUP), str(SUPERGROUP)]
    assert sent[-1].result["message_id"] == int(ref) and "reply_parameters" not in sent[-1].params


# -- admins of a group --------------------------------------------------------------------------------------


@pytest.fixture
def seen(world: World, monkeypatch) -> list[Command]:
    """Every Command the channel dispatches."""
    commands: list[Command] = []
    real = webhook.dispatch

    def spy(cmd: Command, services, **kwargs) -> Reply:
        commands.append(cmd)
        return real(cmd, services, **kwargs)
    monkeypatch.setattr("bot.telegram.webhook.dispatch", spy)
    return commands


@pytest.mark.parametrize("status, expected", [("creator", True), ("administrator", True), ("member", False),
                                              ("restricted", False), ("left", False), ("kicked", False)])
def test_a_group_commands_admin_flag_is_the_users_status_in_the_chat(world: World, seen: list[Command],
                                                                   status: str, expected: bool) -> None:
    world.fake.set_member(SUPERGROUP, ADMIN, status)
    world.said(said_in(SUPERGROUP, "/datasets", user=ADMIN))
    assert world.fake.sent("getChatMember") == []  # asked only when a command needs it
    assert seen[-1].is_admin() is expected and seen[-1].is_admin() is expected
    asked = world.fake.sent("getChatMember")
    assert len(asked) == 1 and asked[0].params == {"chat_id": str(SUPERGROUP), "user_id": str(ADMIN)}


def test_a_button_pressed_in_a_group_carries_the_pressers_admin_flag(world: World, seen: list[Command]) -> None:
    world.fake.set_member(SUPERGROUP, ADMIN, "administrator")
    world.said(pressed("datasets", chat=SUPERGROUP, user=ADMIN))
    world.said(pressed("datasets", chat=SUPERGROUP, user=MEMBER))
    assert [c.user for c in seen] == [str(ADMIN), str(MEMBER)]
    assert [c.is_admin() for c in seen] == [True, False]


def test_the_one_user_of_a_private_chat_is_its_admin_without_asking(world: World, seen: list[Command]) -> None:
    world.said(command("/datasets"))
    assert seen[-1].is_admin() is True and world.fake.sent("getChatMember") == []


def test_in_a_group_an_admin_may_delete_a_members_dataset_and_another_member_may_not(world: World) -> None:
    world.fake.set_member(SUPERGROUP, ADMIN, "administrator")
    doc = update("document_upload", chat=SUPERGROUP, caption="/upload colours")
    doc["message"]["from"]["id"] = OWNER
    data = _zip()
    doc["message"]["document"].update(file_id="zip-super", file_size=len(data))
    world.fake.add_file("zip-super", data)
    world.said(doc)
    refused = world.said(said_in(SUPERGROUP, "/delete colours confirm", user=MEMBER))
    assert "Only the person who uploaded 'colours' or an admin of this chat" in refused
    assert world.services.records.get(f"telegram:{SUPERGROUP}", "colours") is not None
    world.said(said_in(SUPERGROUP, "/delete colours confirm", user=ADMIN))
    assert world.services.records.get(f"telegram:{SUPERGROUP}", "colours") is None


def test_a_failed_member_lookup_counts_as_not_an_admin(world: World, seen: list[Command]) -> None:
    world.said(said_in(SUPERGROUP, "/datasets", user=ADMIN))
    world.fake.forget_chat(SUPERGROUP)  # getChatMember answers 400 "chat not found"
    assert seen[-1].is_admin() is False


# -- API keys asked for in a group --------------------------------------------------------------------------


def test_a_key_asked_for_in_a_group_is_sent_to_the_admin_privately_never_to_the_group(world: World) -> None:
    world.fake.set_member(GROUP, ADMIN, "administrator")
    world.post(said_in(GROUP, "/apikey new notebook", user=ADMIN, kind="group"))
    private = [c for c in world.fake.sent("sendMessage") if str(c.params["chat_id"]) == str(ADMIN)]
    in_group = [c for c in world.fake.sent("sendMessage") if str(c.params["chat_id"]) == str(GROUP)]
    assert len(private) == 1 and "mlbot_" in private[0].params["text"]
    assert in_group and all("mlbot_" not in c.params["text"] for c in in_group)
    assert "private message" in in_group[-1].params["text"]
    key = private[0].params["text"].split("shown this once: ")[1].split()[0]
    assert authenticate(world.services.blobs, key).tenant == f"telegram:{GROUP}"  # the group's key


def test_when_the_admin_never_opened_a_private_chat_the_key_is_revoked_and_the_group_told(world: World) -> None:
    world.fake.set_member(GROUP, ADMIN, "administrator")
    world.fake.never_opened_a_chat(ADMIN)
    world.post(said_in(GROUP, "/apikey new", user=ADMIN, kind="group"))
    texts = [c.params["text"] for c in world.fake.sent("sendMessage") if str(c.params["chat_id"]) == str(GROUP)]
    assert "open a chat with me (press Start)" in texts[-1] and all("mlbot_" not in t for t in texts)
    (key,) = keys_of(world.services.blobs, f"telegram:{GROUP}")
    assert key.revoked  # made, never shown, so never usable


def test_a_member_of_a_group_who_is_not_an_admin_cannot_make_a_key(world: World) -> None:
    world.fake.set_member(GROUP, MEMBER, "member")
    assert "Only an admin of this chat" in world.said(said_in(GROUP, "/apikey new", user=MEMBER, kind="group"))
    assert keys_of(world.services.blobs, f"telegram:{GROUP}") == []
