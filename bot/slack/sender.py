"""ChatSender for Slack: chat.postMessage / chat.update through the Web API, images with files_upload_v2.

The WebClient is built with ``base_url=SLACK_API_URL`` (tests point it at a local fake) and retries once
on a 429, after the Retry-After Slack sends.
"""
from __future__ import annotations

from typing import Any, Mapping

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.slack.blocks import message
from handlers.commands import Reply
from platform_core.config import Settings


def web_client(settings: Settings) -> WebClient:
    client = WebClient(token=settings.slack_bot_token or None, base_url=settings.slack_api_url, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def upload_attachments(client: WebClient, channel: str, thread: str | None, reply: Reply) -> None:
    """The reply's image and file, if any, with files_upload_v2 (into the same thread)."""
    for name, content in ((reply.image_name, reply.image), *([reply.file] if reply.file else [])):
        if content:
            client.files_upload_v2(channel=channel, thread_ts=thread, content=content, filename=name, title=name)


class SlackSender:
    """Posts where ``reply_to`` says: {"channel": "slack", "channel_id", "thread_ts"?}."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def send(self, reply_to: Mapping[str, Any], reply: Reply) -> str | None:
        channel, thread = str(reply_to["channel_id"]), reply_to.get("thread_ts")
        posted = self.client.chat_postMessage(channel=channel, thread_ts=thread, **message(reply))
        upload_attachments(self.client, channel, thread, reply)
        return posted.get("ts")

    def edit(self, reply_to: Mapping[str, Any], ref: str, reply: Reply) -> None:
        self.client.chat_update(channel=str(reply_to["channel_id"]), ts=ref, **message(reply))
