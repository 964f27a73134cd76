"""Telegram webhook: the secret check, one update -> one chat command, the reply through the sender.

``handle_webhook`` knows no HTTP framework: the Lambda entry and `mlbot serve` hand it headers and the raw
body and send back its (status, JSON body). Telegram redelivers an update on any answer other than 2xx, so
after the secret and JSON checks every update gets 200: duplicates, edits, member updates and faults too.

A chat's tenant is `telegram:<chat id>`, except for a supergroup that was a group: Telegram's service messages
(``migrate_to_chat_id`` in the old group, ``migrate_from_chat_id`` in the supergroup) link its new id to the
group's tenant (platform_core.tenants), so its datasets answer there. A Command's ``admin`` is True in a
private chat; in a group it asks getChatMember, once, and only when a command needs to know.
"""
from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any, Callable, Mapping

from telegram import CallbackQuery, Chat, Message, Update, User
from telegram.constants import ChatType

from bot.telegram.buttons import EXPIRED, ButtonExpired, ButtonStore, is_token
from bot.telegram.sender import TelegramSender, too_large
from handlers.chat import VERBS, dispatch, parse
from handlers.commands import Attachment, Command, Reply
from handlers.replies import error_reply
from handlers.services import Services
from platform_core.backend import Backend, backend_for
from platform_core.config import Settings
from platform_core.errors import MlbotError
from platform_core.jobs import ReplyTo
from platform_core.ports import Idempotency
from platform_core.prediction import MAX_IMAGE_BYTES
from platform_core.tenants import link_tenant, resolve_tenant

log = logging.getLogger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_DOWNLOAD_BYTES = MAX_IMAGE_BYTES  # Telegram's getFile limit for bots is the same 20 MB
APOLOGY = "Sorry, something went wrong on our side. Please try again in a minute."
PRIVATE_REFUSED = ("I can only show that to you in a private chat, and Telegram will not let me start one: open a "
                   "chat with me (press Start), then ask again here. Nothing was kept.")
FILE_VERBS = frozenset({"upload", "predict"})
KNOWN_VERBS = frozenset(VERBS) | {"train", "retrain"}


class TelegramChannel:
    """What handling an update needs: the use cases' services, the idempotency port, the sender, settings."""

    def __init__(self, services: Services, idempotency: Idempotency, sender: TelegramSender, settings: Settings,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.services, self.idempotency, self.sender, self.settings = services, idempotency, sender, settings
        self.clock = clock
        self._linked: dict[str, str] = {}  # supergroup tenant -> its group's tenant (links never change)

    def process(self, data: Mapping[str, Any]) -> None:
        """Handle one update once (Idempotency.once: skipped while an attempt runs or after one finished; an
        attempt that failed or died leaves it to a redelivery). A fault is logged and the chat gets a short
        apology."""
        update = Update.de_json(dict(data), self.sender.bot)
        try:
            if not self.idempotency.once(f"telegram:update:{update.update_id}", lambda: self._handle(update)):
                log.info("update %s was already handled or is in progress", update.update_id)
        except Exception:
            log.exception("update %s failed", update.update_id)
            self._apologise(update)

    def _handle(self, update: Update) -> None:
        if update.message is not None:
            self._on_message(update.message)
        elif update.callback_query is not None:
            self._on_callback(update.callback_query)
        else:
            log.debug("update %s needs no answer", update.update_id)

    def _on_message(self, message: Message) -> None:
        if message.migrate_to_chat_id or message.migrate_from_chat_id:
            self._on_migration(message)
            return
        text = message.text or message.caption or ""
        if message.from_user is not None and message.from_user.is_bot:
            return
        if not text and not (message.document or message.photo):
            return  # stickers, voice, service messages
        if not text.startswith("/") and message.chat.type != ChatType.PRIVATE:
            return  # group conversation not addressed to the bot
        reply_to = _reply_to(message)
        verb, args = parse(text)
        try:
            attachment = self._attachment(message) if verb in FILE_VERBS else None
        except MlbotError as exc:
            self.sender.send(reply_to, error_reply(exc))
            return
        user = message.from_user.id if message.from_user else message.chat.id
        self._run(Command(verb, self._tenant(message.chat), str(user), args, attachment,
                          admin=self._admin(message.chat, message.from_user)), reply_to)

    def _on_callback(self, query: CallbackQuery) -> None:
        """A pressed button runs its command as if typed (a token button: the command kept for it)."""
        self.sender.answer_callback(query.id)
        message, data = query.message, query.data or ""
        if message is None or not data:
            return  # an inline-mode message
        if is_token(data):
            try:
                data = self._kept_command(data, message.chat)
            except ButtonExpired as exc:
                log.info("button %s refused: %s", data, exc.why)
                self.sender.send(_reply_to(message), Reply(EXPIRED, ok=False, data={"error": "button_expired"}))
                return
        verb, args = parse(data)
        if verb not in KNOWN_VERBS:
            return  # a button that is not ours
        cmd = Command(verb, self._tenant(message.chat), str(query.from_user.id), args,
                      admin=self._admin(message.chat, query.from_user))
        self._run(cmd, _reply_to(message))

    def _kept_command(self, data: str, chat: Chat) -> str:
        """The command a token button stands for, pressed in ``chat`` (or in the supergroup its group became)."""
        store: ButtonStore | None = self.sender.buttons
        if store is None:
            raise ButtonExpired(data, "this channel keeps no button store")
        here = self._tenant(chat)
        return store.command(data, str(chat.id), same_tenant=lambda other: resolve_tenant(
            self.services.blobs, f"telegram:{other}") == here)

    def _on_migration(self, message: Message) -> None:
        """A group became a supergroup: the supergroup's tenant uses the group's datasets from now on."""
        if message.migrate_to_chat_id:
            old, new = message.chat.id, message.migrate_to_chat_id
        else:
            old, new = message.migrate_from_chat_id, message.chat.id
        tenant = f"telegram:{new}"
        found = link_tenant(self.services.blobs, tenant, f"telegram:{old}", records=self.services.records)
        if found != tenant:
            self._linked[tenant] = found

    def _tenant(self, chat: Chat) -> str:
        """The chat's tenant: its own, or for a supergroup that was a group, the group's (one read until
        found; a found link is kept, since links never change)."""
        own = f"telegram:{chat.id}"
        if chat.type != ChatType.SUPERGROUP:
            return own  # only a supergroup can be the new id of an upgraded group
        if own not in self._linked:
            found = resolve_tenant(self.services.blobs, own)
            if found == own:
                return own
            self._linked[own] = found
        return self._linked[own]

    def _admin(self, chat: Chat, user: User | None) -> bool | Callable[[], bool]:
        """True in a private chat (its one user); in a group a check that asks Telegram once, when called."""
        if chat.type == ChatType.PRIVATE:
            return True
        if user is None:
            return False
        answer: list[bool] = []

        def ask() -> bool:
            if not answer:
                answer.append(self.sender.is_admin(str(chat.id), str(user.id)))
            return answer[0]
        return ask

    def _run(self, cmd: Command, reply_to: ReplyTo) -> None:
        reply = dispatch(cmd, self.services, reply_to=reply_to)
        if reply.private and reply_to.chat != cmd.user:  # a new API key, asked for in a group: to the user alone
            self._tell_privately(cmd, reply_to, reply)
            return
        self.sender.send(reply_to, reply)

    def _tell_privately(self, cmd: Command, reply_to: ReplyTo, reply: Reply) -> None:
        """A private chat with the user; when Telegram refuses it (the user never opened one with the bot),
        what was made for their eyes only is undone (the key revoked) and the group told what to do."""
        try:
            self.sender.send(ReplyTo("telegram", cmd.user), reply)
        except Exception:
            log.info("could not message user %s privately; undoing the private reply", cmd.user, exc_info=True)
            if reply.data.get("id"):
                dispatch(Command("apikey", cmd.tenant, cmd.user, ("revoke", str(reply.data["id"])), admin=True),
                         self.services)
            self.sender.send(reply_to, Reply(PRIVATE_REFUSED, ok=False, data={"error": "private_chat_needed"}))
            return
        self.sender.send(reply_to, Reply("I sent it to you in a private message (shown once)."))

    def _attachment(self, message: Message) -> Attachment | None:
        """The photo (its largest size) or document, after checking the declared size."""
        if message.photo:
            size = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
            file_id, declared, filename = size.file_id, size.file_size, "photo.jpg"
        elif message.document is not None:
            doc = message.document
            file_id, declared, filename = doc.file_id, doc.file_size, doc.file_name or "document"
        else:
            return None
        if declared is not None and declared > MAX_DOWNLOAD_BYTES:
            raise too_large(declared, MAX_DOWNLOAD_BYTES)
        return Attachment(filename, self.sender.download(file_id, MAX_DOWNLOAD_BYTES))

    def _apologise(self, update: Update) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        try:
            self.sender.send(ReplyTo("telegram", str(chat.id)), Reply(APOLOGY, ok=False))
        except Exception:
            log.exception("could not apologise to chat %s", chat.id)


def handle_webhook(headers: Mapping[str, str], body: bytes, channel: TelegramChannel,
                   process: Callable[[dict], None] | None = None) -> tuple[int, dict]:
    """(status, JSON body) for one webhook request; ``body`` is the raw (already base64-decoded) bytes.

    ``process`` handles the verified update (default: at once, ``channel.process``); the Lambda entry hands
    it to an asynchronous invocation instead, so Telegram is answered within its timeout. Without a
    configured TELEGRAM_WEBHOOK_SECRET every request is refused: the webhook is off (polling may be on)."""
    secret = channel.settings.telegram_webhook_secret
    given = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER), "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        log.warning("webhook request with a wrong or missing secret token refused")
        return 401, {"ok": False, "error": "unauthorized"}
    try:
        data = json.loads(body)
    except ValueError:
        return 400, {"ok": False, "error": "the body is not JSON"}
    if not isinstance(data, dict) or type(data.get("update_id")) is not int:
        return 400, {"ok": False, "error": "the body is not a Telegram update"}
    try:
        (process or channel.process)(data)
    except Exception:
        log.exception("update %s could not be handled", data["update_id"])
    return 200, {"ok": True}


def _reply_to(message: Any) -> ReplyTo:
    """Where the answer and any training notifications go: this chat (its forum topic), as a reply to this
    message."""
    topic = message.message_thread_id if getattr(message, "is_topic_message", False) else None
    return ReplyTo("telegram", str(message.chat.id), thread=None if topic is None else str(topic),
                   answering=str(message.message_id))


def build_channel(settings: Settings, services: Services | None = None, *,
                  backend: Backend | None = None) -> TelegramChannel:
    """The one way a Telegram channel is built (the webhook Lambda, `mlbot serve`, long polling): its
    services and dedupe store over one backend, and a Bot API sender."""
    from bot.wiring import build_services

    backend = backend or backend_for(settings)
    services = services or build_services(settings, backend=backend)
    return TelegramChannel(services, backend.idempotency,
                           TelegramSender(settings, buttons=ButtonStore(services.blobs)), settings)
