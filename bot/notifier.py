"""The notifier Lambda: training events from the SNS topic, told to the chat that asked.

Each SNS record's message is one TrainingEvent (platform_core.events); the Notifier (handlers.notify)
renders it and sends it through the channel named in its ``reply_to``. Locally the same Notifier is an
in-process subscriber (bot.console.chat, `mlbot serve`). A failed delivery is logged and recorded and the
invocation still succeeds, so SNS does not redeliver into a chat that refuses it; a malformed record is
logged and skipped.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from bot.wiring import settings_from_env
from handlers.notify import Notifier
from platform_core.ports import ChatSender
from platform_core.adapters.aws_powertools import lambda_entry, log_keys
from platform_core.config import Settings
from platform_core.events import TrainingEvent
from platform_core.backend import backend_for

log = logging.getLogger(__name__)


def chat_senders(settings: Settings, backend: Any = None) -> dict[str, ChatSender]:
    """A sender per channel whose token is configured; for a Slack app installed in many workspaces
    (SLACK_CLIENT_ID), each notice goes with the token of the workspace that asked."""
    senders: dict[str, ChatSender] = {}
    if settings.slack_client_id:
        from bot.slack.installations import bot_token, installation_store
        from bot.slack.sender import SlackSender, WorkspaceClients

        store = installation_store(settings, backend or backend_for(settings))
        senders["slack"] = SlackSender(WorkspaceClients(settings, lambda to: bot_token(store, to.team, to.enterprise)))
    elif settings.slack_bot_token:
        from bot.slack.sender import SlackSender, web_client

        senders["slack"] = SlackSender(web_client(settings))
    if settings.telegram_bot_token:
        from bot.telegram.sender import TelegramSender

        senders["telegram"] = TelegramSender(settings)
    return senders


def build_notifier(settings: Settings) -> Callable[[TrainingEvent], None]:
    """The chat notices, then (Slack) the asker's App Home tab refreshed when their training ends."""
    backend = backend_for(settings)
    senders = chat_senders(settings, backend)
    notifier = Notifier(senders, backend.notifications, backend.blobs, backend.idempotency)
    if "slack" not in senders:
        return notifier
    from bot.slack.home import HomeRefresher

    home = HomeRefresher(senders["slack"].client_for, backend.records)

    def notify(event: TrainingEvent) -> None:
        notifier(event)
        home(event)
    return notify


def notify_records(event: dict[str, Any], notifier: Callable[[TrainingEvent], None]) -> int:
    """Deliver every SNS record of one invocation; returns how many were training events."""
    delivered = 0
    for record in event.get("Records") or []:
        try:
            training_event = TrainingEvent.from_json(record["Sns"]["Message"])
        except (KeyError, TypeError, ValueError):
            log.error("skipping a record that is not a training event: %s", str(record)[:300])
            continue
        log_keys(job_id=training_event.job_id)
        log.info("notifying %s of %s", training_event.reply_to.channel if training_event.reply_to else "nobody", training_event.type)
        notifier(training_event)
        delivered += 1
    return delivered


_notifier: Callable[[TrainingEvent], None] | None = None


@lambda_entry("mlbot-notifier")
def handler(event: dict, context: Any = None) -> dict:
    """AWS Lambda entry point (template.yaml: bot.notifier.handler), subscribed to the events topic."""
    global _notifier
    if _notifier is None:
        _notifier = build_notifier(settings_from_env())
    return {"delivered": notify_records(event, _notifier)}
