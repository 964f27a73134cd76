"""ChatSender for Slack: chat.postMessage / chat.update through the Web API, images with files_upload_v2.

The WebClient is built with ``base_url=SLACK_API_URL`` (tests point it at a local fake) and retries once
on a 429, after the Retry-After Slack sends.
"""
from __future__ import annotations

from typing import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.slack.blocks import message
from handlers.commands import Reply
from platform_core.config import Settings
from platform_core.errors import ChatUnreachable
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
    reference then carries that conversation ("D123|ts") so progress edits follow it there.

    ``client`` is one WebClient (one workspace's token), or, for an app installed in many workspaces, a
    function giving the client of the workspace ``reply_to.team`` (WorkspaceClients)."""

    def __init__(self, client: WebClient | Callable[[ReplyTo], WebClient]) -> None:
        self._client = client

    def client_for(self, reply_to: ReplyTo) -> WebClient:
        return self._client if isinstance(self._client, WebClient) else self._client(reply_to)

    def send(self, reply_to: ReplyTo, reply: Reply) -> str | None:
        channel, thread = reply_to.chat, reply_to.thread
        client = self.client_for(reply_to)
        try:
            posted = client.chat_postMessage(channel=channel, thread_ts=thread, **message(reply))
        except SlackApiError as exc:
            user = reply_to.user
            if exc.response.get("error") not in UNREACHABLE_CHANNEL or not user:
                raise
            direct = Reply(ELSEWHERE + reply.text, reply.ok, reply.data, reply.image, reply.image_name,
                           reply.buttons, reply.file)
            posted = client.chat_postMessage(channel=str(user), **message(direct))
            upload_attachments(client, str(posted.get("channel")), None, reply)
            return f"{posted.get('channel')}|{posted.get('ts')}"
        upload_attachments(client, channel, thread, reply)
        return posted.get("ts")

    def edit(self, reply_to: ReplyTo, ref: str, reply: Reply) -> None:
        channel, _, ts = ref.rpartition("|")
        self.client_for(reply_to).chat_update(channel=channel or reply_to.chat, ts=ts, **message(reply))


class WorkspaceClients:
    """The WebClient of the workspace a notice goes to, with the bot token its installation holds; a
    workspace that has uninstalled the app has none (ChatUnreachable: the notifier records it, never
    retries)."""

    def __init__(self, settings: Settings, tokens: Callable[[ReplyTo], str | None]) -> None:
        self._settings, self._tokens = settings, tokens

    def __call__(self, reply_to: ReplyTo) -> WebClient:
        token = self._tokens(reply_to)
        if not token:
            raise ChatUnreachable("slack", f"workspace {reply_to.team} has no installation of the app")
        client = WebClient(token=token, base_url=self._settings.slack_api_url, timeout=15)
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
        return client
