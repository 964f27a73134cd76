"""Telegram's outbound side: replies, progress edits, button answers and file downloads over the Bot API.

python-telegram-bot is async and its HTTP client belongs to the event loop that first used it, so each
sender owns one private loop in a daemon thread and every call is submitted there: the webhook path, the
notifier's worker threads and the Lambda entry all call the same synchronous methods.

Buttons carry their command in the callback data when it fits Telegram's 64 bytes and a token of the
ButtonStore otherwise (bot.telegram.buttons); a sender without a store leaves an overlong button off rather
than send one that would run a cut command. A message to a group that became a supergroup is sent again in
the supergroup.

The bot token sits inside every Bot API and file URL. python-telegram-bot logs the URLs at DEBUG and httpx
logs each request at INFO, so the token is redacted from those loggers' records before any handler sees
them; file URLs are never stored or logged here.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Coroutine, TypeVar
from urllib.parse import quote

from telegram import Bot, ChatMember, InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import BadRequest, ChatMigrated, RetryAfter, TelegramError

from bot.telegram.buttons import MAX_CALLBACK_DATA, ButtonStore, fits
from handlers.commands import Button, Reply
from platform_core.config import MB, Settings
from platform_core.errors import ConfigError, FileRefused, StorageError
from platform_core.jobs import ReplyTo

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_TEXT = 4096  # UTF-16 code units in one message
REDACTED = "<bot-token>"
# Where the token can appear: python-telegram-bot's Bot (ExtBot when polling through an Application), httpx's
# request lines, and this channel's own error logs.
TOKEN_LOGGERS = ("httpx", "telegram.Bot", "telegram.ext.ExtBot", "bot.telegram.sender", "bot.telegram.webhook")
ADMIN_STATUSES = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR})


def too_large(size: int | None, limit: int) -> FileRefused:
    """The refusal for a file over Telegram's download limit, with its size when known."""
    what = f"That file is {size / MB:.1f} MB, and" if size is not None else "That file is too large:"
    return FileRefused(f"{what} Telegram lets bots download at most {limit // MB} MB. Send a smaller file.")


class _RedactToken(logging.Filter):
    """Replaces the token, as is or URL-quoted (file URLs are), in a record's message and traceback;
    never drops a record."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.forms = sorted({token, quote(token), quote(token, safe="")}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        # Rendered now: python-telegram-bot logs getFile's result dict, then writes the file URL into it.
        record.msg, record.args = self._redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if any(form in text for form in self.forms):
                record.exc_text = self._redact(text)
        return True

    def _redact(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, REDACTED)
        return text


def hide_token(token: str) -> None:
    """Install the redacting filter (once per token) on every logger that can see the token."""
    for name in TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactToken) and f.token == token for f in logger.filters):
            logger.addFilter(_RedactToken(token))


class TelegramSender:
    """ChatSender for Telegram; ``reply_to`` holds ``chat_id`` and optionally ``reply_to_message_id``
    and ``message_thread_id``. Texts are sent plain (no parse_mode), so user text cannot break formatting.
    ``buttons`` keeps the commands too long for a button's callback data."""

    def __init__(self, settings: Settings, *, buttons: ButtonStore | None = None, max_wait_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.telegram_bot_token:
            raise ConfigError("TELEGRAM_BOT_TOKEN")
        hide_token(settings.telegram_bot_token)
        self.bot = Bot(settings.telegram_bot_token, base_url=settings.telegram_api_url,
                       base_file_url=settings.telegram_file_url)
        self.buttons, self.max_wait_s, self._sleep = buttons, max_wait_s, sleep
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="telegram-sender", daemon=True)
        self._thread.start()

    def send(self, reply_to: ReplyTo, reply: Reply) -> str:
        """Post the text (in several messages if long), then the image; buttons go under the last one.
        Returns the first text message's id, the one progress edits replace. A group that became a
        supergroup gets it in the supergroup (not as a reply: its message ids are the old group's)."""
        try:
            return self._send(reply_to, reply)
        except ChatMigrated as exc:
            log.info("chat %s is now the supergroup %s: sending there", reply_to.chat, exc.new_chat_id)
            return self._send(replace(reply_to, chat=str(exc.new_chat_id), thread=None, answering=None), reply)

    def _send(self, reply_to: ReplyTo, reply: Reply) -> str:
        chat_id, thread = int(reply_to.chat), int(reply_to.thread) if reply_to.thread else None
        answered = reply_to.answering
        quoted = ReplyParameters(int(answered), allow_sending_without_reply=True) if answered else None
        keyboard = self._keyboard(reply_to, reply.buttons)
        pieces = split_text(reply.text)
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1 and reply.image is None and reply.file is None
            message: Message = self._call(lambda: self.bot.send_message(
                chat_id, piece, message_thread_id=thread, reply_parameters=None if ids else quoted,
                reply_markup=keyboard if last else None))
            ids.append(message.message_id)
        if reply.image is not None:
            self._call(lambda: self.bot.send_photo(
                chat_id, reply.image, caption=caption_for(reply.image_name), filename=reply.image_name,
                message_thread_id=thread, reply_markup=keyboard if reply.file is None else None))
        if reply.file is not None:
            name, content = reply.file
            self._call(lambda: self.bot.send_document(
                chat_id, content, filename=name, message_thread_id=thread, reply_markup=keyboard))
        return str(ids[0])

    def edit(self, reply_to: ReplyTo, ref: str, reply: Reply) -> None:
        """Replace the text of message ``ref``; an unchanged text is not an error."""
        try:
            self._call(lambda: self.bot.edit_message_text(
                split_text(reply.text)[0], chat_id=int(reply_to.chat), message_id=int(ref),
                reply_markup=self._keyboard(reply_to, reply.buttons)))
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise

    def answer_callback(self, query_id: str) -> None:
        """Stop the button's spinner; a query too old to answer is only logged."""
        try:
            self._call(lambda: self.bot.answer_callback_query(query_id))
        except BadRequest as exc:
            log.warning("could not answer callback query: %s", exc.message)

    def is_admin(self, chat_id: str, user_id: str) -> bool:
        """True when the user is the chat's creator or one of its administrators (getChatMember); a lookup
        Telegram refuses (the user or chat unknown to the bot) is logged and counts as not an admin."""
        try:
            member = self._call(lambda: self.bot.get_chat_member(int(chat_id), int(user_id)))
        except BadRequest as exc:
            log.warning("getChatMember refused for chat %s: %s", chat_id, exc.message)
            return False
        return member.status in ADMIN_STATUSES

    def _keyboard(self, reply_to: ReplyTo, buttons: tuple[Button, ...]) -> InlineKeyboardMarkup | None:
        """The buttons with their callback data; without a store (or when it fails) a button whose command
        does not fit is left off, so the reply itself still goes out."""
        if self.buttons is not None and buttons:
            try:
                return keyboard_for(buttons, self.buttons.callback_data(reply_to.chat, [b.command for b in buttons]))
            except StorageError:
                log.exception("could not keep the buttons' long commands; sending those that fit")
        kept = tuple(b for b in buttons if fits(b.command))
        if len(kept) < len(buttons):
            log.warning("%d button(s) left off: their command is over %d bytes", len(buttons) - len(kept),
                        MAX_CALLBACK_DATA)
        return keyboard_for(kept, [b.command for b in kept])

    def download(self, file_id: str, max_bytes: int) -> bytes:
        """The file's bytes via getFile, refusing one over ``max_bytes`` or outside TELEGRAM_FILE_URL."""
        try:
            file = self._call(lambda: self.bot.get_file(file_id))
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise too_large(None, max_bytes) from exc
            log.warning("getFile refused a file: %s", exc.message)
            raise FileRefused() from exc
        if file.file_size is not None and file.file_size > max_bytes:
            raise too_large(file.file_size, max_bytes)
        # python-telegram-bot keeps a file_path that names an existing local file as it is and would read
        # it from disk; only paths under our file URL are downloaded.
        if not str(file.file_path or "").startswith(self.bot.base_file_url + "/"):
            log.warning("getFile answered a path outside the file URL; not downloading")
            raise FileRefused()
        try:
            data = self._call(file.download_as_bytearray)
        except TelegramError as exc:  # a 404 on the file URL arrives as InvalidToken
            log.warning("file download failed: %s", type(exc).__name__)
            raise FileRefused() from exc
        if len(data) > max_bytes:
            raise too_large(len(data), max_bytes)
        return bytes(data)

    def get_updates(self, offset: int | None, timeout_s: int = 25) -> list[dict[str, Any]]:
        """Long polling (`mlbot serve` without a webhook): the next updates as dicts, waiting up to ``timeout_s``."""
        updates = self._call(lambda: self.bot.get_updates(offset=offset, timeout=timeout_s,
                                                          allowed_updates=["message", "callback_query"]))
        return [u.to_dict() for u in updates]

    def close(self) -> None:
        """Close the HTTP client and stop the loop thread."""
        self._run(self.bot.request.shutdown())  # Bot.shutdown() skips a bot never initialize()d
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run one API call; after a 429 wait its ``retry_after`` (when within the bound) and try once more."""
        try:
            return self._run(make())
        except RetryAfter as exc:
            wait = retry_seconds(exc)
            if wait > self.max_wait_s:
                raise
            log.warning("Telegram rate limit: retrying in %.0f s", wait)
            self._sleep(wait)
            return self._run(make())

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


def retry_seconds(exc: RetryAfter) -> float:
    """``retry_after`` in seconds: python-telegram-bot 22 gives an int or, with PTB_TIMEDELTA set, a timedelta."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def keyboard_for(buttons: tuple[Button, ...], data: list[str]) -> InlineKeyboardMarkup | None:
    """One button a row, each with its callback data (``data``, in the same order)."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=d)] for b, d in zip(buttons, data)])


def caption_for(image_name: str) -> str:
    """'colours-confusion-matrix.png' -> 'colours confusion matrix'."""
    return image_name.rsplit(".", 1)[0].replace("-", " ")


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces Telegram accepts, split at line ends where possible (an overlong line is cut)."""
    pieces, current = [], ""
    for line in text.splitlines(keepends=True):
        parts = [line[i:i + limit // 2] for i in range(0, len(line), limit // 2)] if _units(line) > limit else [line]
        for part in parts:
            if current and _units(current + part) > limit:
                pieces.append(current)
                current = ""
            current += part
    pieces.append(current)
    return [p.rstrip("\n") for p in pieces if p.strip()] or ["-"]


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
