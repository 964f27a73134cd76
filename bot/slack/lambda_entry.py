"""The Slack bot Lambda behind API Gateway: Bolt's AWS Lambda adapter over bot.slack.app.

Each request is acknowledged within Slack's 3 seconds; the work runs in a second, asynchronous invocation
of this same function (Bolt's lazy listeners; template.yaml lets the function invoke itself).
"""
from __future__ import annotations

from typing import Any

from slack_bolt.adapter.aws_lambda import SlackRequestHandler

from bot.slack.app import build_app
from bot.wiring import build_idempotency, build_services, settings_from_env
from handlers.services import Services
from platform_core.config import Settings


UNAUTHORIZED = {"statusCode": 401, "headers": {"content-type": "application/json"},
                "body": '{"error": "invalid request"}'}


class SlackLambda:
    """Bolt's Lambda handler, behind one check Bolt lacks: a non-numeric X-Slack-Request-Timestamp is a
    401 (Bolt's verifier raises on it, which would be a 500)."""

    def __init__(self, handler: SlackRequestHandler) -> None:
        self.bolt = handler
        self.app = handler.app

    def handle(self, event: dict, context: Any) -> dict:
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        timestamp = headers.get("x-slack-request-timestamp")
        if timestamp is not None and not str(timestamp).strip().isdigit():
            return dict(UNAUTHORIZED)
        return self.bolt.handle(event, context)


def build_handler(settings: Settings, services: Services | None = None, *, client: Any = None,
                  lambda_client: Any = None) -> SlackLambda:
    """The Lambda handler for the app; ``lambda_client`` is what re-invokes the function for lazy work."""
    services = services or build_services(settings)
    handler = SlackRequestHandler(build_app(settings, services, build_idempotency(settings), client=client))
    if lambda_client is not None:
        handler.app.listener_runner.lazy_listener_runner.lambda_client = lambda_client
    return SlackLambda(handler)


_handler: SlackLambda | None = None


def handler(event: dict, context: Any) -> dict:
    """AWS Lambda entry point (template.yaml: bot.slack.lambda_entry.handler)."""
    global _handler
    if _handler is None:
        _handler = build_handler(settings_from_env())
    return _handler.handle(event, context)
