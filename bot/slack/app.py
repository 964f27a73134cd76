"""The Slack channel: a Bolt app with `process_before_response=True` and lazy listeners.

Every request is acknowledged at once (on Lambda, Bolt re-invokes the function asynchronously for the
lazy part; locally it runs in a thread). What is handled:
- `/ml <verb> ...`: the chat commands of handlers.chat, answered through the command's response_url;
- a file shared in a `message` (subtype `file_share`) whose text is `upload NAME [description]` or
  `predict NAME`, or arriving as `file_shared` with such a comment: downloaded (declared size first, token
  only to Slack's file host) and processed once per file id, the answer in the file's thread;
- a direct message with a command; the buttons under replies.
Retries of one event (`X-Slack-Retry-Num`, same `event_id`) cause one side effect: every delivery is
acknowledged, and the lazy work runs once per event id and once per file id (Idempotency.once: in progress
while it runs, completed after; an attempt that failed or died leaves the id free for a retry, so a refused
self-invocation or a Lambda that timed out is redone, never dropped). Signatures, `url_verification` and
`ssl_check` are Bolt's.

Nothing of the use cases is imported for the acknowledgement: handlers.chat (every handler module, the
validators, Pillow) is imported by the first lazy listener that parses or dispatches a command.
"""
from __future__ import annotations

import functools
import logging
import re
import time
from typing import Any, Callable, Mapping

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.blocks import BUTTON_ACTION, escape, message
from bot.slack.files import download
from bot.slack.sender import SlackSender, web_client
from handlers.commands import Attachment, Command, Reply
from handlers.services import Services
from platform_core.config import Settings
from platform_core.errors import FileRefused
from platform_core.jobs import ReplyTo
from platform_core.ports import Idempotency
from platform_core.prediction import MAX_IMAGE_BYTES

log = logging.getLogger(__name__)
FILE_VERBS = ("upload", "predict")
IGNORED_SUBTYPES = {"bot_message", "message_changed", "message_deleted", "channel_join", "channel_leave",
                    "thread_broadcast"}
SORRY = "Something went wrong on our side; nothing was changed. Try again in a minute."


def _chat() -> Any:
    """handlers.chat (every handler module, the validators, Pillow), imported after the acknowledgement."""
    from handlers import chat

    return chat


class SlackBot:
    """The listeners' logic, separate from Bolt's registration so each piece reads on its own."""

    def __init__(self, settings: Settings, services: Services, seen: Idempotency, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.services, self.seen, self.clock = settings, services, seen, clock
        self.failed_attempts = 0  # lazy work that raised (Bolt only logs it; the Lambda entry fails the invocation)

    # --- ingress ----------------------------------------------------------------------------------

    def ack_command(self, body: dict, ack: Callable[..., None]) -> None:
        text = escape(" ".join(str(body.get("text", "")).split())[:200])
        ack(text=f"Working on `/ml {text}`..." if text else "Working on it...")

    # --- lazy work --------------------------------------------------------------------------------

    def run_command(self, body: dict, respond: Callable[..., Any], client: WebClient) -> None:
        """`/ml <verb> ...`, answered in the channel (refusals only to the user who typed them)."""
        workspace = workspace_of(body)
        if workspace is None:
            respond(response_type="ephemeral", replace_original=False, text=NO_WORKSPACE)
            return
        verb, args = _chat().parse(str(body.get("text", "")))
        reply_to = destination(body.get("channel_id"), user=body.get("user_id"), **_workspace_of_reply(body))
        user = str(body.get("user_id"))
        cmd = Command(verb, tenant(workspace), user, args, admin=workspace_admin(client, user))
        reply = self._safely(cmd, reply_to)
        shown = "in_channel" if reply.ok and not reply.private else "ephemeral"  # a new API key: the asker alone
        respond(response_type=shown, replace_original=False, **message(reply))

    def once_per_event(self, body: dict, work: Callable[[], None]) -> None:
        """The lazy half of an event, once per event_id (Slack's retries of a slow or lost acknowledgement
        carry the same id): skipped while an attempt runs or after one finished."""
        event_id = body.get("event_id")
        try:
            if not event_id:
                work()
            elif not self.seen.once(f"slack:event:{event_id}", work):
                log.info("slack event %s already handled or in progress", event_id)
        except Exception:  # the id is free again: a retry of this attempt does the work
            self.failed_attempts += 1
            raise

    def on_message(self, body: dict, event: dict, client: WebClient) -> None:
        self.once_per_event(body, lambda: self._on_message(body, event, client))

    def _on_message(self, body: dict, event: dict, client: WebClient) -> None:
        if event.get("bot_id") or event.get("subtype") in IGNORED_SUBTYPES:
            return
        workspace, user, channel = workspace_of(body), str(event.get("user")), str(event.get("channel"))
        thread = event.get("thread_ts") or event.get("ts")
        if workspace is None:
            log.warning("slack event %s names no workspace: ignored", body.get("event_id"))
            return
        if _from_another_organisation(body, event):  # Slack Connect: never another tenant's datasets
            if _is_dm(event) or event.get("subtype") == "file_share":
                self._post(client, channel, thread, Reply(FOREIGN_USER, ok=False))
            return
        team = tenant(workspace)
        verb, args = _chat().parse(str(event.get("text") or ""))
        if event.get("subtype") == "file_share":
            for file in event.get("files") or []:
                self._file(client, file, verb, args, team, user, channel, thread, body, direct=_is_dm(event))
        elif event.get("subtype") is None and _is_dm(event):
            self._post(client, channel, None, self._safely(Command(verb, team, user, args,
                                                                   admin=workspace_admin(client, user)),
                                                           destination(channel, user=user, **_workspace_of_reply(body))))

    def on_file_shared(self, body: dict, event: dict, client: WebClient) -> None:
        """A `file_shared` event carries ids only: its comment, if any, says what to do."""
        self.once_per_event(body, lambda: self._on_file_shared(body, event, client))

    def _on_file_shared(self, body: dict, event: dict, client: WebClient) -> None:
        file = client.files_info(file=str(event.get("file_id")))["file"]
        comment = (file.get("initial_comment") or {}).get("comment") or ""
        verb, args = _chat().parse(comment)
        workspace = workspace_of(body)
        if verb in FILE_VERBS and workspace:  # otherwise the `message` event of the same share carries the text
            self._file(client, file, verb, args, tenant(workspace),
                       str(event.get("user_id") or file.get("user")), str(event.get("channel_id")), None,
                       body, direct=False)

    def on_home_opened(self, body: dict, event: dict, client: WebClient) -> None:
        """The App Home tab: this workspace's datasets (bot.slack.home)."""
        from bot.slack.home import publish_home

        workspace = workspace_of(body)
        if workspace and event.get("tab") in (None, "home") and event.get("user"):
            publish_home(client, str(event["user"]), self.services.records, tenant(workspace))

    def ack_uninstalled(self, ack: Callable[..., None], context: Any) -> None:
        """`app_uninstalled`: the installation (its token) goes before the acknowledgement, with Bolt's own
        listener (``forget_installation``)."""
        self.forget_installation(context=context)
        ack()

    def on_uninstalled(self, body: dict) -> None:
        """...and the workspace is marked departed: its datasets are kept for the retention period, then
        deleted (platform_core.retention), unless it installs again."""
        from platform_core.retention import depart

        workspace = workspace_of(body)
        if workspace:
            depart(self.services.blobs, tenant(workspace), self.clock(), "the Slack app was uninstalled")

    def on_button(self, body: dict, client: WebClient, respond: Callable[..., Any]) -> None:
        action = (body.get("actions") or [{}])[0]
        verb, args = _chat().parse(str(action.get("value") or ""))
        channel = str((body.get("channel") or {}).get("id"))
        workspace = workspace_of(body)
        if workspace is None:
            respond(response_type="ephemeral", replace_original=False, text=NO_WORKSPACE)
            return
        user = str((body.get("user") or {}).get("id"))
        cmd = Command(verb, tenant(workspace), user, args, admin=workspace_admin(client, user))
        reply = self._safely(cmd, destination(channel, **_workspace_of_reply(body)))
        respond(response_type="ephemeral" if reply.private else "in_channel", replace_original=False,
                **message(reply))

    # --- helpers ----------------------------------------------------------------------------------

    def _file(self, client: WebClient, file: Mapping[str, Any], verb: str, args: tuple[str, ...], team: str,
              user: str, channel: str, thread: str | None, body: Mapping[str, Any], *, direct: bool) -> None:
        if verb not in FILE_VERBS:
            if direct:
                self._post(client, channel, thread, Reply(
                    "To use this file, send it with the text `upload NAME` (a dataset) or `predict NAME` "
                    "(an image to classify).", ok=False))
            return
        work = lambda: self._use_file(client, file, verb, args, team, user, channel, thread, body)  # noqa: E731
        if not self.seen.once(f"slack:file:{file.get('id')}", work):
            log.info("slack file %s already handled or in progress (the other event of one share)", file.get("id"))

    def _use_file(self, client: WebClient, file: Mapping[str, Any], verb: str, args: tuple[str, ...], team: str,
                  user: str, channel: str, thread: str | None, body: Mapping[str, Any]) -> None:
        limit = self.services.limits.max_upload_bytes if verb == "upload" else MAX_IMAGE_BYTES
        try:  # the token of the workspace the file belongs to (the request's own client)
            data = download(file, token=client.token or self.settings.slack_bot_token,
                            api_url=self.settings.slack_api_url, max_bytes=limit)
        except FileRefused as exc:
            self._post(client, channel, thread, Reply(exc.user_message(), ok=False))
            return
        cmd = Command(verb, team, user, args, Attachment(str(file.get("name") or "upload"), data),
                      admin=workspace_admin(client, user))
        self._post(client, channel, thread, self._safely(cmd, destination(channel, thread, user=user,
                                                                          **_workspace_of_reply(body))))

    def _safely(self, cmd: Command, reply_to: ReplyTo) -> Reply:
        try:
            return _chat().dispatch(cmd, self.services, reply_to=reply_to)
        except Exception:  # a bug or an outage: logged with its trace, told plainly
            log.exception("slack command %s failed", cmd.verb)
            return Reply(SORRY, ok=False)

    def _post(self, client: WebClient, channel: str, thread: str | None, reply: Reply) -> None:
        SlackSender(client).send(destination(channel, thread), reply)


def workspace_admin(client: WebClient, user: str) -> Callable[[], bool]:
    """Whether ``user`` is an admin or owner of the workspace (users.info, asked once and only when a command
    needs it: handlers.permissions). An answer Slack refuses counts as no."""
    @functools.cache
    def check() -> bool:
        try:
            info = client.users_info(user=user).get("user") or {}
        except SlackApiError as exc:
            log.warning("could not ask Slack whether %s is an admin: %s", user, exc.response.get("error"))
            return False
        return bool(info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"))
    return check


def destination(channel: Any, thread: Any = None, *, team: Any = None, user: Any = None,
                enterprise: Any = None) -> ReplyTo:
    """The Slack conversation (and thread) a request came from: where its answers and notices go, with the
    workspace (and Grid organisation) whose installation's token posts them."""
    return ReplyTo("slack", str(channel), thread=str(thread) if thread else None,
                   team=str(team) if team else None, user=str(user) if user else None,
                   enterprise=str(enterprise) if enterprise else None)


def tenant(team_id: Any) -> str:
    """A Slack workspace is the tenant `slack:<team_id>` (an org-wide install: `slack:<enterprise_id>`)."""
    if not team_id:
        raise ValueError("a Slack tenant needs a workspace id")
    return f"slack:{team_id}"


NO_WORKSPACE = "This request names no Slack workspace, so it cannot be answered."
FOREIGN_USER = ("You are in a channel shared with another organisation, and its datasets belong to that "
                "workspace: use mlbot from a channel or DM of your own workspace.")


def workspace_of(body: Mapping[str, Any]) -> str | None:
    """The signed payload's workspace: its enterprise for an org-wide install (Enterprise Grid), else its team;
    None when it names neither (refused, never a shared `slack:None`)."""
    auth = (body.get("authorizations") or [{}])[0] or {}
    org_wide = auth.get("is_enterprise_install") in (True, "true") or body.get("is_enterprise_install") in (True, "true")
    if org_wide:
        return enterprise_of(body)
    team = body.get("team_id")
    if not team and isinstance(body.get("team"), dict):  # interactivity payloads
        team = body["team"].get("id")
    return str(team) if team else None


def enterprise_of(body: Mapping[str, Any]) -> str | None:
    """The Enterprise Grid organisation of the signed payload's workspace (None outside Grid)."""
    auth = (body.get("authorizations") or [{}])[0] or {}
    enterprise = body.get("enterprise_id") or auth.get("enterprise_id")
    if not enterprise and isinstance(body.get("enterprise"), dict):  # interactivity payloads
        enterprise = body["enterprise"].get("id")
    if not enterprise and isinstance(body.get("team"), dict):
        enterprise = body["team"].get("enterprise_id")
    return str(enterprise) if enterprise else None


def _workspace_of_reply(body: Mapping[str, Any]) -> dict[str, str | None]:
    return {"team": workspace_of(body), "enterprise": enterprise_of(body)}


def _from_another_organisation(body: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """A Slack Connect message whose author belongs to another workspace than the one the event is for."""
    user_team = event.get("user_team")
    return bool(user_team) and user_team not in (body.get("team_id"), body.get("enterprise_id"))


def _is_dm(event: Mapping[str, Any]) -> bool:
    return event.get("channel_type") == "im"


def _ack(ack: Callable[..., None]) -> None:
    ack()


def build_app(settings: Settings, services: Services, seen: Idempotency, *, client: WebClient | None = None,
              clock: Callable[[], float] = time.time, backend: Any = None) -> App:
    """The Bolt app; Lambda wraps it in Bolt's SlackRequestHandler, `mlbot serve` in its own route.

    With SLACK_CLIENT_ID (and a ``backend`` for the stores) any workspace installs it through Bolt's OAuth
    flow and every request is answered with its own workspace's token; `app_uninstalled` and
    `tokens_revoked` delete that workspace's installation, and its later events are acknowledged and
    ignored; the workspace's data is deleted after the retention period (platform_core.retention) unless it
    installs again. Without it, one workspace's SLACK_BOT_TOKEN answers everything."""
    bot = SlackBot(settings, services, seen, clock=clock)
    common = dict(signing_secret=settings.slack_signing_secret, process_before_response=True,
                  logger=logging.getLogger("bot.slack.bolt"))
    if settings.slack_client_id:
        from bot.slack.installations import installation_store, oauth_settings

        store = installation_store(settings, backend)
        app = App(client=client or WebClient(base_url=settings.slack_api_url, timeout=15),
                  oauth_settings=oauth_settings(settings, backend, store),
                  user_facing_authorize_error_message="mlbot is not installed in this workspace any more; "
                                                      "an admin can add it again.", **common)
        bot.forget_installation = app.default_app_uninstalled_event_listener()
        app.event("tokens_revoked")(app.default_tokens_revoked_event_listener())
        app.event("app_uninstalled")(ack=bot.ack_uninstalled, lazy=[bot.on_uninstalled])
    else:
        app = App(client=client or web_client(settings), token_verification_enabled=False,  # auth.test on first use
                  **common)
    app.command("/ml")(ack=bot.ack_command, lazy=[bot.run_command])
    app.event("message")(ack=_ack, lazy=[bot.on_message])
    app.event("file_shared")(ack=_ack, lazy=[bot.on_file_shared])
    app.event("app_home_opened")(ack=_ack, lazy=[bot.on_home_opened])
    app.action(re.compile(rf"^{BUTTON_ACTION}_\d+$"))(ack=_ack, lazy=[bot.on_button])
    app.mlbot = bot  # the Lambda entry reads bot.failed_attempts
    return app
