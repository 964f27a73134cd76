"""The Slack bot Lambda behind API Gateway: Bolt's AWS Lambda adapter over bot.slack.app.

Each request is acknowledged within Slack's 3 seconds; the work runs in a second, asynchronous invocation
of this same function (Bolt's lazy listeners; template.yaml lets the function invoke itself).

A cold container does only what the acknowledgement needs: the signing secret (settings), the dedupe
write for events (the Idempotency client, built on its first use) and the self-invocation (Bolt's Lambda
client). The use cases' services (S3, DynamoDB, EC2, Lambda clients) are built on first use by the lazy
listener, and their modules imported then (`python -m bench.coldstart` measures both ways).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from slack_bolt.adapter.aws_lambda import SlackRequestHandler

from bot import wiring
from bot.slack.app import build_app
from bot.wiring import settings_from_env
from handlers.services import LazyServices, Services
from platform_core.adapters.aws_powertools import lambda_entry
from platform_core.backend import Backend, backend_for
from platform_core.config import Settings
from platform_core.ports import Idempotency


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


class FirstUseIdempotency:
    """The Idempotency store, built on its first `first` (an event's dedupe, still a conditional write before
    the ack); a slash command, which has no event_id, is acknowledged without building it."""

    def __init__(self, factory: Callable[[], Idempotency]) -> None:
        self._factory, self._store, self._lock = factory, None, threading.Lock()

    def first(self, key: str, ttl_s: float, now: float) -> bool:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._factory()
        return self._store.first(key, ttl_s, now)


def build_handler(settings: Settings, services: Services | None = None, *, client: Any = None,
                  lambda_client: Any = None, backend: Backend | None = None) -> SlackLambda:
    """The Lambda handler for the app; ``lambda_client`` is what re-invokes the function for lazy work.
    Without ``services``, they are built by bot.wiring.build_services on first use (after the ack)."""
    backend = backend or backend_for(settings)  # builds nothing yet; what is built is shared
    if services is None:
        services = LazyServices(lambda: wiring.build_services(settings, backend=backend))
    seen = FirstUseIdempotency(lambda: backend.idempotency)
    handler = SlackRequestHandler(build_app(settings, services, seen, client=client, backend=backend))
    if lambda_client is not None:
        handler.app.listener_runner.lazy_listener_runner.lambda_client = lambda_client
    return SlackLambda(handler)


_handler: SlackLambda | None = None


@lambda_entry("mlbot-slack")
def handler(event: dict, context: Any) -> dict:
    """AWS Lambda entry point (template.yaml: bot.slack.lambda_entry.handler)."""
    global _handler
    if _handler is None:
        _handler = build_handler(settings_from_env())
    return _handler.handle(event, context)
