"""AWS Lambda entry for `POST /telegram/webhook` behind an API Gateway HTTP API (payload format 2.0).

The channel (services, idempotency, the Bot API sender) is built once per container from the environment
(chat secrets from Secrets Manager). A webhook request is checked (secret, JSON) and answered at once; the
update itself is handled by an asynchronous invocation of this same function (template.yaml lets it invoke
itself), so an upload's validation or a trainer's start-up never outlasts Telegram's webhook timeout.
Duplicate deliveries are harmless: the update id is taken once, when the update is handled.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any, Callable

from bot.telegram.webhook import TelegramChannel, build_channel, handle_webhook
from bot.wiring import settings_from_env
from platform_core.adapters.aws_powertools import lambda_entry
from platform_core.config import Settings
from platform_core.errors import MlbotError

log = logging.getLogger(__name__)
ASYNC_KEY = "mlbot_telegram_update"  # an update handed to the asynchronous invocation
_channel: TelegramChannel | None = None
_invoker: Callable[[dict], None] | None = None


def build_handler(settings: Settings, services=None, *, backend=None) -> Callable[[dict, Any], dict]:
    """A Lambda-style handler over its own channel, processing in the request (`mlbot serve`)."""
    channel = build_channel(settings, services, backend=backend)

    def handle(event: dict, context: Any = None) -> dict:
        return _answer(event, channel, None)
    return handle


def channel() -> TelegramChannel:
    """This container's channel, built on first use."""
    global _channel
    if _channel is None:
        _channel = build_channel(settings_from_env())
    return _channel


@lambda_entry("mlbot-telegram")
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """API Gateway event in (``headers``, ``body``, ``isBase64Encoded``), HTTP response out; or, from the
    asynchronous invocation, the update to handle."""
    if ASYNC_KEY in event:
        chan = channel()
        chan.idempotency.register_lambda_context(context)  # a key this attempt takes frees at its deadline
        chan.process(event[ASYNC_KEY])
        return {"ok": True}
    return _answer(event, channel(), _hand_off(context))


def _answer(event: dict[str, Any], chan: TelegramChannel, process: Callable[[dict], None] | None) -> dict:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _response(400, {"ok": False, "error": "the body is not valid base64"})
    else:
        raw = body.encode()
    status, payload = handle_webhook(event.get("headers") or {}, raw, chan, process)
    return _response(status, payload)


def _hand_off(context: Any) -> Callable[[dict], None] | None:
    """Processing in a second invocation of this function; None (process now) outside Lambda."""
    global _invoker
    function = getattr(context, "invoked_function_arn", None)
    if not function:
        return None
    if _invoker is None:
        from platform_core.adapters.aws import make_boto3_client
        from platform_core.adapters.aws_predict import AsyncInvocation

        _invoker = AsyncInvocation(function=function, client=make_boto3_client("lambda", channel().settings))
    invoke = _invoker

    def process(update: dict) -> None:
        try:
            invoke({ASYNC_KEY: update})
        except MlbotError:  # Lambda refused the hand-off: do the work here rather than lose it
            log.exception("could not hand the update off; handling it in this invocation")
            channel().process(update)
    return process


def _response(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(payload)}
