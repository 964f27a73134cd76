"""AWS Lambda entry for `POST /telegram/webhook` behind an API Gateway HTTP API (payload format 2.0).

The channel (services, idempotency, the Bot API sender) is built once per container from the environment;
a missing TELEGRAM_BOT_TOKEN or TELEGRAM_WEBHOOK_SECRET fails the cold start with its name.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from bot.telegram.sender import TelegramSender
from bot.telegram.webhook import TelegramChannel, handle_webhook
from bot.wiring import build_idempotency, build_services
from platform_core.config import Settings

_channel: TelegramChannel | None = None


def channel() -> TelegramChannel:
    """This container's channel, built on first use."""
    global _channel
    if _channel is None:
        settings = Settings.from_env()
        _channel = TelegramChannel(build_services(settings), build_idempotency(settings),
                                   TelegramSender(settings), settings)
    return _channel


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """API Gateway event in (``headers``, ``body``, ``isBase64Encoded``), HTTP response out."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _response(400, {"ok": False, "error": "the body is not valid base64"})
    else:
        raw = body.encode()
    status, payload = handle_webhook(event.get("headers") or {}, raw, channel())
    return _response(status, payload)


def _response(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(payload)}
