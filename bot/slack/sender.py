"""ChatSender for Slack: chat.postMessage / chat.update through the Web API, images with files_upload_v2.

The WebClient is built with ``base_url=SLACK_API_URL`` (tests point it at a local fake) and retries once
on a 429, after the Retry-After Slack sends.
"""
from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.slack.blocks import message
from handlers.commands import Reply
from platform_core.config import Settings
from platform_core.jobs import ReplyTo


def web_client(settings: Settings) -> WebClient:
    client = WebClient(token=settings.slack_bot_token or None, base_url=settings.slack_api_url, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def upload_attachments(client: WebClient, channel: str, thread: str | None, reply: Reply) -> None:
    """The reply's image and file, if any, with files_upload_v2 (into the same thread)."""
    for name, content in ((reply.image_name, reply.image), *([reply.file] if reply.file else [])):
        if content:
            client.files_upload_v2(channel=channel, thread_ts=thread, content=content, filename=name, title=name)


# The channel will not take the bot's message: a slash command used where the bot was never invited.
UNREACHABLE_CHANNEL = {"not_in_channel", "channel_not_found", "is_archived"}
ELSEWHERE = "(I can't post in the channel where you asked; invite me there with /invite. Meanwhile, here:)\n"


class SlackSender:
    """Posts where ``reply_to`` says: its chat (a channel or DM id), thread and the user who asked.

    When the channel refuses the bot, the message goes to the user who asked, as a direct message; its
    reference then carries that conversation ("D123|ts") so progress edits follow it there."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def send(self, reply_to: ReplyTo, reply: Reply) -> str | None:
        channel, thread = reply_to.chat, reply_to.thread
        try:
            posted = self.client.chat_postMessage(channel=channel, thread_ts=thread, **message(reply))
        except SlackApiError as exc:
            user = reply_to.user
            if exc.response.get("error") not in UNREACHABLE_CHANNEL or not user:
                raise
            direct = Reply(ELSEWHERE + reply.text, reply.ok, reply.data, reply.image, reply.image_name,
                           reply.buttons, reply.file)
            posted = self.client.chat_postMessage(channel=str(user), **message(direct))
            upload_attachments(self.client, str(posted.get("channel")), None, reply)
            return f"{posted.get('channel')}|{posted.get('ts')}"
        upload_attachments(self.client, channel, thread, reply)
        return posted.get("ts")

    def edit(self, reply_to: ReplyTo, ref: str, reply: Reply) -> None:
        channel, _, ts = ref.rpartition("|")
        self.client.chat_update(channel=channel or reply_to.chat, ts=ts, **message(reply))
