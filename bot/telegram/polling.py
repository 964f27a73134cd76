"""Telegram long polling for `mlbot serve` on a machine without a public URL (a bot has a webhook or
polling, never both: polling runs only when TELEGRAM_WEBHOOK_SECRET is unset)."""
from __future__ import annotations

import logging
import threading
import time

from bot.telegram.webhook import TelegramChannel, build_channel
from handlers.services import Services
from platform_core.backend import Backend
from platform_core.config import Settings

log = logging.getLogger(__name__)


def poll_once(channel: TelegramChannel, offset: int | None, timeout_s: int = 25) -> int | None:
    """Fetch and handle one batch of updates; returns the next offset."""
    for update in channel.sender.get_updates(offset, timeout_s):
        channel.process(update)
        offset = int(update["update_id"]) + 1
    return offset


def start_polling(settings: Settings, services: Services, *, backend: Backend | None = None,
                  stop: threading.Event | None = None) -> threading.Thread:
    """A daemon thread that polls until ``stop`` is set; a failed poll waits and tries again."""
    channel = build_channel(settings, services, backend=backend)
    stop = stop or threading.Event()

    def loop() -> None:
        offset = None
        while not stop.is_set():
            try:
                offset = poll_once(channel, offset)
            except Exception:  # the network, Telegram, a conflict with a webhook: say so and retry
                log.exception("Telegram polling failed; retrying in 5 s")
                time.sleep(5)
    thread = threading.Thread(target=loop, name="telegram-polling", daemon=True)
    thread.start()
    return thread
