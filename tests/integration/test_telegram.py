"""The Telegram channel end to end on the in-memory fakes (its Lambda entry on the local backend): recorded
updates go through the webhook, the Bot API calls go to a local fake server, and the tests assert on what
the user would see."""
from __future__ import annotations

import base64
import itertools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from telegram.error import RetryAfter

from bot.telegram import lambda_entry
from bot.telegram.buttons import ButtonStore
from bot.telegram.sender import TelegramSender, split_text
from bot.telegram.webhook import APOLOGY, TelegramChannel, handle_webhook
from handlers.commands import Button, Reply
from handlers.notify import Notifier
from platform_core.config import Settings
from platform_core.adapters.local_events import LocalEventBus
from platform_core.jobs import ReplyTo
from tests.fake_telegram import FakeTelegram
from tests.fakes import FakeTrainer, png
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend, memory_services
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TOKEN = "7000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "webhook-secret_0123456789"
EVENTS = Path(__file__).resolve().parents[1] / "events"
ADA, BOB = 1001, 2002  # two private chats: two tenants
MB = 1024 * 1024
_update_ids = itertools.count(900_000_001)


def update(name: str, *, chat: int = ADA, **message_fields: Any) -> dict[str, Any]:
    """A recorded update from tests/events, in ``chat`` (as its user), with a fresh update_id."""
    data = json.loads((EVENTS / f"telegram_{name}.json").read_text())
    data["update_id"] = next(_update_ids)
    message = data.get("message") or data.get("callback_query", {}).get("message")
    if message is not None:
        message["chat"] = ({"id": chat, "type": "private", "first_name": f"user{chat}"} if chat > 0
                           else {"id": chat, "type": "supergroup", "title": "ML study group"})
        sender = data["message"]["from"] if "message" in data else data["callback_query"]["from"]
        sender["id"] = abs(chat)
    if "message" in data:
        data["message"].update(message_fields)
    return data


def command(text: str, *, chat: int = ADA) -> dict[str, Any]:
    return update("text_command", chat=chat, text=text, entities=[
        {"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}])


class World:
    """One bot on the in-memory fakes: webhook channel, fake Bot API, fake trainer, notifier."""

    def __init__(self, home: Path, fake: FakeTelegram) -> None:
        self.fake = fake
        self.settings = Settings(backend="local", home=home, telegram_bot_token=TOKEN,
                                 telegram_webhook_secret=SECRET, telegram_api_url=fake.api_url,
                                 telegram_file_url=fake.file_url)
        self.backend = MemoryBackend(self.settings)
        trainer = FakeTrainer(["red", "green", "blue"])
        self.ctx = build_trainer_context(self.settings, events=LocalEventBus(), backend=self.backend,
                                         trainers={"image": trainer, "sentiment": trainer})
        self.services = memory_services(self.backend)
        self.slept: list[float] = []
        self.sender = TelegramSender(self.settings, buttons=ButtonStore(self.services.blobs), sleep=self.slept.append)
        self.channel = TelegramChannel(self.services, self.backend.idempotency, self.sender, self.settings)
        self.ctx.events.subscribe(Notifier({"telegram": self.sender}, self.backend.notifications,
                                           self.services.blobs, self.backend.idempotency))

    def post(self, data: Any, *, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET} if headers is None else headers
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return handle_webhook(headers, body, self.channel)

    def said(self, data: dict[str, Any]) -> str:
        """Post an update; the text of the last message it produced."""
        before = len(self.fake.calls)
        assert self.post(data) == (200, {"ok": True})
        sent = [c for c in self.fake.calls[before:] if c.method == "sendMessage"]
        assert sent, "the bot said nothing"
        return sent[-1].params["text"]

    def upload(self, name: str = "colours", *, chat: int = ADA) -> str:
        data = _zip()
        doc = update("document_upload", chat=chat, caption=f"/upload {name} my colour swatches")
        doc["message"]["document"].update(file_id=f"zip-{name}-{chat}", file_size=len(data))
        self.fake.add_file(f"zip-{name}-{chat}", data)
        return self.said(doc)

    def photo(self, colour: tuple[int, int, int], caption: str, *, chat: int = ADA) -> dict[str, Any]:
        """A photo update whose largest size is served with ``colour``; the smaller sizes are not served."""
        data = update("photo_predict", chat=chat, caption=caption)
        largest = data["message"]["photo"][-1]
        image = png(colour, size=64)
        largest["file_size"] = len(image)
        self.fake.add_file(largest["file_id"], image, file_path=f"photos/file_{chat}.jpg")
        return data


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, fake: FakeTelegram) -> Iterator[World]:
    built = World(tmp_path / "home", fake)
    yield built
    built.sender.close()


@pytest.fixture
def trained(world: World) -> World:
    """'colours' uploaded and trained in Ada's chat."""
    world.upload()
    assert "Queued 'colours'" in world.said(command("/train colours"))
    drain(world.ctx)
    world.fake.calls.clear()
    return world


# -- ingress: secret, body, duplicates, updates that need no answer -----------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
                                     {"X-Telegram-Bot-Api-Secret-Token": ""},
                                     {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"},
                                     {"X-Telegram-Bot-Api-Secret-Token": "sécret"},
                                     {"X-Other-Header": SECRET}])
def test_a_wrong_or_missing_secret_is_401_and_nothing_is_sent(world: World, headers) -> None:
    data = command("/help")
    assert world.post(data, headers=headers)[0] == 401
    assert world.fake.calls == []
    # the refused request did not use up the update: the genuine delivery is handled
    assert world.post(data, headers={"x-telegram-bot-api-secret-token": SECRET}) == (200, {"ok": True})
    assert len(world.fake.sent("sendMessage")) == 1


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe{", b"[1, 2]", b'"update"', b'{"message": {}}',
                                  b'{"update_id": "7"}'])
def test_a_body_that_is_not_an_update_is_400(world: World, body: bytes) -> None:
    assert world.post(body)[0] == 400
    assert world.fake.calls == []


def test_a_duplicate_update_id_has_one_side_effect(world: World) -> None:
    data = _zip()
    doc = update("document_upload", caption="/upload colours")
    doc["message"]["document"]["file_size"] = len(data)
    world.fake.add_file(doc["message"]["document"]["file_id"], data)
    for _ in range(3):
        assert world.post(doc) == (200, {"ok": True})
    assert [c.method for c in world.fake.calls] == ["getFile", "download", "sendMessage"]
    assert world.services.records.get(f"telegram:{ADA}", "colours").dataset_version == 1


def test_an_update_whose_handling_failed_is_handled_when_telegram_delivers_it_again(world: World,
                                                                                    monkeypatch) -> None:
    handle, failures = world.channel._on_message, []

    def fails_once(message) -> None:
        if not failures:
            failures.append(message.message_id)
            raise RuntimeError("the store was unreachable")
        handle(message)
    monkeypatch.setattr(world.channel, "_on_message", fails_once)
    command = update("text_command")
    assert world.post(command) == (200, {"ok": True})
    assert failures and world.fake.texts() == [APOLOGY]  # told at once, and the update id left free
    assert world.post(command) == (200, {"ok": True})  # delivered again: now it is done
    assert world.post(command) == (200, {"ok": True})  # and a third time: nothing
    assert len(world.fake.texts()) == 2 and world.fake.texts()[1] != APOLOGY


@pytest.mark.parametrize("name", ["edited_message", "my_chat_member"])
def test_edits_and_member_updates_get_200_and_no_message(world: World, name: str) -> None:
    assert world.post(update(name)) == (200, {"ok": True})
    assert world.fake.calls == []


def test_messages_that_are_not_commands_get_no_answer(world: World) -> None:
    group = -1002233445566
    sticker = update("text_command", text=None, entities=None, sticker={
        "file_id": "CAACAgIAAxkBAAIBEGd1", "file_unique_id": "AgADbQADWbv8JQ", "type": "regular",
        "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": "👍"})
    for data in (command("hello everyone", chat=group), sticker):
        assert world.post(data) == (200, {"ok": True})
    assert world.fake.calls == []
    assert "train a model" in world.said(command("hello", chat=ADA))  # a private chat needs no '/'
    assert "train a model" in world.said(command("/help@mlbot_test_bot", chat=group))
    assert world.fake.sent("sendMessage")[-1].params["chat_id"] == str(group)


def test_an_unexpected_fault_is_logged_and_gets_an_apology_and_200(world: World, monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("internal detail")
    monkeypatch.setattr("bot.telegram.webhook.dispatch", broken)
    with caplog.at_level(logging.ERROR, logger="bot.telegram.webhook"):
        assert world.said(command("/datasets")) == APOLOGY  # said() also checks the 200
    assert "internal detail" in caplog.text and "internal detail" not in "".join(world.fake.texts())


# -- the commands -------------------------------------------------------------------------------------------


def test_help_and_start_answer_with_the_commands_and_a_button(world: World) -> None:
    for text in ("/help", "/start", "/help@mlbot_test_bot"):
        data = command(text)
        assert "train NAME" in world.said(data) and "predict NAME" in world.fake.texts()[-1]
        call = world.fake.sent("sendMessage")[-1]
        assert call.params["chat_id"] == str(ADA) and "parse_mode" not in call.params
        assert call.params["reply_parameters"]["message_id"] == data["message"]["message_id"]
        assert call.params["reply_markup"] == {"inline_keyboard": [[
            {"text": "My datasets", "callback_data": "datasets"}]]}


def test_upload_datasets_train_and_status(world: World) -> None:
    stored = world.upload()
    assert "Stored image dataset 'colours'" in stored and "red (10)" in stored
    assert world.fake.sent("sendMessage")[-1].params["reply_markup"]["inline_keyboard"][0][0] == {
        "text": "Train colours", "callback_data": "train colours"}
    assert world.services.records.get(f"telegram:{ADA}", "colours").description == "my colour swatches"
    assert "colours" in world.said(command("/datasets"))
    queued = world.said(command("/train colours"))
    assert "Queued 'colours' for training" in queued
    job = world.services.jobs.active_for(f"telegram:{ADA}", "colours")
    assert job.reply_to.chat == str(ADA) and job.reply_to.channel == "telegram"
    assert "Training Queued" in world.said(command("/status colours"))
    drain(world.ctx)
    assert "Training Successful" in world.said(command("/status colours"))


def test_an_invalid_upload_lists_its_problems_and_stores_nothing(world: World) -> None:
    doc = update("document_upload", caption="/upload broken")
    doc["message"]["document"].update(file_size=9, file_name="broken.zip")
    world.fake.add_file(doc["message"]["document"]["file_id"], b"not a zip")
    reply = world.said(doc)
    assert "zip" in reply.lower() and world.services.records.get(f"telegram:{ADA}", "broken") is None


@pytest.mark.parametrize("caption, name, mime", [("/upload big", "big.zip", "application/zip"),
                                                 ("/predict colours", "big.png", "image/png")])
def test_a_document_over_20_mb_is_refused_before_getfile(world: World, caption, name, mime) -> None:
    doc = update("document_upload", caption=caption)
    doc["message"]["document"].update(file_size=25 * MB, file_name=name, mime_type=mime)
    reply = world.said(doc)
    assert "25.0 MB" in reply and "at most 20 MB" in reply
    assert world.fake.sent("getFile", "download") == []


def test_a_getfile_path_outside_the_file_url_is_never_read(world: World, tmp_path: Path) -> None:
    local = tmp_path / "private.zip"
    local.write_bytes(_zip())  # python-telegram-bot would read an existing local path from disk
    doc = update("document_upload", caption="/upload sneaky")
    world.fake.add_file(doc["message"]["document"]["file_id"], b"", file_path=str(local))
    assert "could not fetch that file" in world.said(doc)
    assert world.services.records.get(f"telegram:{ADA}", "sneaky") is None


def test_a_file_telegram_will_not_hand_over_is_explained(world: World) -> None:
    assert "could not fetch that file" in world.said(update("photo_predict", caption="/predict colours"))
    doc = update("document_upload", caption="/upload huge")
    del doc["message"]["document"]["file_size"]  # optional in the Bot API: getFile is the check
    world.fake.add_file(doc["message"]["document"]["file_id"], bytes(21 * MB))
    assert "at most 20 MB" in world.said(doc) and world.fake.sent("download") == []


def test_a_photo_is_predicted_from_its_largest_size(trained: World) -> None:
    data = trained.photo((250, 5, 5), "/predict colours")
    reply = trained.said(data)
    assert reply.startswith("red (") and "confident" in reply
    largest = data["message"]["photo"][-1]["file_id"]
    assert [c.params["file_id"] for c in trained.fake.sent("getFile")] == [largest]


def test_an_image_document_captioned_predict_is_predicted(trained: World) -> None:
    image = png((5, 5, 250))
    doc = update("document_upload", caption="/predict colours")
    doc["message"]["document"].update(file_name="sky.png", mime_type="image/png", file_size=len(image))
    trained.fake.add_file(doc["message"]["document"]["file_id"], image)
    assert trained.said(doc).startswith("blue (")


def test_predict_with_text_on_an_image_dataset_says_to_send_an_image(trained: World) -> None:
    reply = trained.said(update("predict_text"))
    assert "send an image" in reply and trained.fake.sent("getFile") == []


def test_a_pressed_button_runs_its_command_and_is_answered(world: World) -> None:
    world.upload()
    press = update("callback_query")
    assert "Queued 'colours' for training" in world.said(press)
    assert world.fake.sent("answerCallbackQuery")[0].params["callback_query_id"] == press["callback_query"]["id"]
    job = world.services.jobs.active_for(f"telegram:{ADA}", "colours")
    assert job.reply_to == ReplyTo("telegram", str(ADA),
                                   answering=str(press["callback_query"]["message"]["message_id"]))


@pytest.mark.parametrize("data", ["", "game:level-2", "rm -rf colours"])
def test_a_button_that_is_not_ours_is_answered_and_ignored(world: World, data: str) -> None:
    press = update("callback_query")
    press["callback_query"]["data"] = data
    assert world.post(press) == (200, {"ok": True})
    assert [c.method for c in world.fake.calls] == ["answerCallbackQuery"]


# -- notifications and the sender ---------------------------------------------------------------------------


def test_training_progress_and_the_result_reach_the_chat(world: World) -> None:
    world.upload()
    train = command("/train colours")
    world.said(train)
    world.fake.calls.clear()
    drain(world.ctx)
    methods = [c.method for c in world.fake.calls]
    assert methods[0] == "sendMessage" and "editMessageText" in methods and methods[-2:] == ["sendMessage",
                                                                                          "sendPhoto"]
    progress = world.fake.calls[0]
    assert progress.params["text"].startswith("Training 'colours' [")
    assert progress.params["reply_parameters"]["message_id"] == train["message"]["message_id"]
    edits = world.fake.sent("editMessageText")
    assert {c.params["message_id"] for c in edits} == {str(progress.result["message_id"])}
    assert "epoch 3/3" in edits[-2].params["text"] and "finished" in edits[-1].params["text"]
    summary, photo = world.fake.calls[-2:]
    assert "Training 'colours' finished" in summary.params["text"]
    assert photo.params["chat_id"] == str(ADA) and photo.params["caption"] == "colours confusion matrix"
    assert photo.files["photo"] == ("colours-confusion-matrix.png", png((1, 2, 3)))  # the trainer's matrix
    assert photo.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "status colours"


def test_a_429_is_retried_after_retry_after(world: World) -> None:
    world.fake.fail_next("sendMessage", retry_after=3)
    assert "train NAME" in world.said(command("/help"))
    assert world.slept == [3.0] and len(world.fake.sent("sendMessage")) == 2


def test_a_429_beyond_the_bound_is_not_waited_for(world: World) -> None:
    world.fake.fail_next("sendMessage", retry_after=600)
    with pytest.raises(RetryAfter):
        world.sender.send(ReplyTo("telegram", str(ADA)), Reply("hello"))
    assert world.slept == [] and len(world.fake.sent("sendMessage")) == 1


def test_the_sender_works_from_several_threads_at_once(world: World) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        refs = list(pool.map(lambda i: world.sender.send(ReplyTo("telegram", str(ADA)), Reply(f"note {i}")), range(8)))
    assert len(set(refs)) == 8
    assert sorted(c.params["text"] for c in world.fake.sent("sendMessage")) == [f"note {i}" for i in range(8)]


def test_long_texts_are_split_and_buttons_go_under_the_last_piece(world: World) -> None:
    lines = [f"problem {i}: images/red/{i}.png is not a readable image" for i in range(200)]
    ref = world.sender.send(ReplyTo("telegram", str(ADA)), Reply("\n".join(lines), buttons=(Button("Help", "help"),)))
    sent = world.fake.sent("sendMessage")
    assert len(sent) > 1 and "\n".join(c.params["text"] for c in sent) == "\n".join(lines)
    assert "reply_markup" not in sent[0].params and sent[-1].params["reply_markup"]
    assert ref == str(sent[0].result["message_id"])
    assert split_text("x" * 9000) == ["x" * 4096, "x" * 4096, "x" * 808]  # an overlong line is cut


def test_a_command_over_64_bytes_is_never_cut_into_another_command(world: World) -> None:
    cut_here = "status " + "é" * 28  # 63 bytes: cutting at 64 would have split the next character
    ref = ReplyTo("telegram", str(ADA))
    world.sender.send(ref, Reply("pick", buttons=(Button("A", cut_here), Button("B", cut_here + "é"))))
    first, second = (row[0]["callback_data"] for row in
                     world.fake.sent("sendMessage")[-1].params["reply_markup"]["inline_keyboard"])
    assert first == cut_here and len(second.encode()) <= 64
    assert world.sender.buttons.command(second, str(ADA)) == cut_here + "é"


# -- tenants, secrets, Lambda -------------------------------------------------------------------------------


def test_one_chat_never_sees_trains_or_predicts_on_anothers_dataset(trained: World) -> None:
    for text in ("/status colours", "/train colours"):
        assert "There is no dataset named 'colours' here" in trained.said(command(text, chat=BOB))
    assert "There is no dataset named 'colours' here" in trained.said(trained.photo((250, 5, 5), "/predict colours",
                                                                                    chat=BOB))
    assert "colours" not in trained.said(command("/datasets", chat=BOB))
    assert {c.params["chat_id"] for c in trained.fake.sent("sendMessage")} == {str(BOB)}
    assert trained.services.jobs.active_for(f"telegram:{BOB}", "colours") is None


def test_the_token_never_reaches_a_log_record_or_a_reply(tmp_path: Path, fake: FakeTelegram, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        world = World(tmp_path / "home", fake)  # python-telegram-bot logs its URLs as the bot is built
        try:
            world.upload()
            world.said(command("/train colours"))
            drain(world.ctx)
            world.said(world.photo((250, 5, 5), "/predict colours"))
            fake.fail_next("sendMessage", retry_after=600)  # a fault through python-telegram-bot: logged
            assert world.said(world.photo((250, 5, 5), "/predict colours")) == APOLOGY
        finally:
            world.sender.close()
    assert "HTTP Request: POST" in caplog.text and "<bot-token>" in caplog.text  # httpx was heard, redacted
    assert "/file/bot<bot-token>/photos/" in caplog.text  # the file URL, URL-quoted by python-telegram-bot
    assert "RetryAfter" in caplog.text  # the fault's traceback was logged too
    assert TOKEN.split(":")[1] not in caplog.text
    assert all(TOKEN.split(":")[1] not in record.getMessage() for record in caplog.records)
    assert all(TOKEN.split(":")[1] not in text for text in fake.texts())


def test_the_lambda_entry_decodes_a_base64_body(tmp_path: Path, fake: FakeTelegram, monkeypatch) -> None:
    for name, value in {"MLBOT_BACKEND": "local", "MLBOT_HOME": str(tmp_path / "home"),
                        "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET,
                        "TELEGRAM_API_URL": fake.api_url, "TELEGRAM_FILE_URL": fake.file_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lambda_entry, "_channel", None)
    body = base64.b64encode(json.dumps(command("/start")).encode()).decode()
    event = {"version": "2.0", "routeKey": "POST /telegram/webhook", "rawPath": "/telegram/webhook",
             "headers": {"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET},
             "body": body, "isBase64Encoded": True}
    try:
        out = lambda_entry.handler(event, None)
        assert out["statusCode"] == 200 and json.loads(out["body"]) == {"ok": True}
        assert "train NAME" in fake.sent("sendMessage")[-1].params["text"]
        channel = lambda_entry._channel
        assert lambda_entry.handler({**event, "body": "%%%"}, None)["statusCode"] == 400
        wrong = {**event, "headers": {"x-telegram-bot-api-secret-token": "nope"}}
        assert lambda_entry.handler(wrong, None)["statusCode"] == 401
        assert lambda_entry._channel is channel and len(fake.sent("sendMessage")) == 1  # built once
    finally:
        lambda_entry._channel.sender.close()


def test_without_a_webhook_secret_the_webhook_refuses_everything(world: World, fake: FakeTelegram) -> None:
    polling_only = TelegramChannel(world.services, world.backend.idempotency, world.sender,
                                   Settings(backend="local", home=world.settings.home, telegram_bot_token=TOKEN))
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": ""}, {"X-Telegram-Bot-Api-Secret-Token": SECRET}):
        status, _ = handle_webhook(headers, json.dumps(command("/help")).encode(), polling_only)
        assert status == 401
    assert fake.sent("sendMessage") == []


def test_on_lambda_the_webhook_answers_at_once_and_a_second_invocation_does_the_work(
        tmp_path: Path, fake: FakeTelegram, monkeypatch) -> None:
    for name, value in {"MLBOT_BACKEND": "local", "MLBOT_HOME": str(tmp_path / "home"),
                        "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET,
                        "TELEGRAM_API_URL": fake.api_url, "TELEGRAM_FILE_URL": fake.file_url}.items():
        monkeypatch.setenv(name, value)
    handed: list[dict] = []
    monkeypatch.setattr(lambda_entry, "_channel", None)
    monkeypatch.setattr(lambda_entry, "_invoker", handed.append)

    class Context:
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlbot-telegram"
    help_update = command("/help")
    event = {"version": "2.0", "headers": {"x-telegram-bot-api-secret-token": SECRET},
             "body": json.dumps(help_update), "isBase64Encoded": False}
    try:
        out = lambda_entry.handler(event, Context())
        assert out["statusCode"] == 200 and fake.sent("sendMessage") == []  # answered, nothing done yet
        assert handed == [{lambda_entry.ASYNC_KEY: help_update}]
        assert lambda_entry.handler(handed[0], Context()) == {"ok": True}
        assert "train NAME" in fake.sent("sendMessage")[-1].params["text"]
        lambda_entry.handler(handed[0], Context())  # Lambda may run an async event twice: one reply
        assert len(fake.sent("sendMessage")) == 1
        assert lambda_entry.handler({**event, "headers": {}}, Context())["statusCode"] == 401 and len(handed) == 1
    finally:
        lambda_entry._channel.sender.close()


def test_long_polling_handles_each_update_once_and_confirms_it(world: World, fake: FakeTelegram) -> None:
    from bot.telegram.polling import poll_once

    polling = TelegramChannel(world.services, world.backend.idempotency, world.sender,
                              Settings(backend="local", home=world.settings.home, telegram_bot_token=TOKEN,
                                       telegram_api_url=fake.api_url, telegram_file_url=fake.file_url))
    first, second = command("/help"), command("/datasets")
    fake.updates = [first, second]
    offset = poll_once(polling, None, timeout_s=0)
    assert offset == second["update_id"] + 1
    assert poll_once(polling, offset, timeout_s=0) == offset and fake.updates == []  # confirmed, nothing new
    texts = [c.params["text"] for c in fake.sent("sendMessage")]
    assert len(texts) == 2 and "train NAME" in texts[0] and texts[1].startswith("No datasets yet")


def test_batch_predictions_come_back_as_a_document_and_feedback_buttons_work(trained: World) -> None:
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.png", png((250, 5, 5)))
        zf.writestr("b.png", png((5, 250, 5)))
    doc = update("document_upload", caption="/predict colours")
    doc["message"]["document"].update(file_id="batch-zip", file_size=len(archive.getvalue()), file_name="batch.zip")
    trained.fake.add_file("batch-zip", archive.getvalue())
    assert trained.post(doc) == (200, {"ok": True})
    sent = trained.fake.sent("sendDocument")[-1]
    name, csv_bytes = sent.files["document"]
    assert name == "predictions-colours.csv" and csv_bytes.decode().splitlines()[1].startswith("a.png,red,")
    predicted = trained.photo((250, 5, 5), "/predict colours")
    trained.post(predicted)
    keyboard = trained.fake.sent("sendMessage")[-1].params["reply_markup"]["inline_keyboard"]
    pressed = next(b["callback_data"] for row in keyboard for b in row if b["text"].startswith("No, it's"))
    callback = update("callback_query")
    callback["callback_query"]["data"] = pressed
    assert "kept as an example" in trained.said(callback)
