"""The Slack bot Lambda behind API Gateway: Bolt's AWS Lambda adapter over bot.slack.app.

Each request is acknowledged within Slack's 3 seconds; the work runs in a second, asynchronous invocation
of this same function (Bolt's lazy listeners; template.yaml lets the function invoke itself).

A cold container does only what the acknowledgement needs: the signing secret (settings) and the
self-invocation (Bolt's Lambda client); the once-per-event check runs in the lazy invocation (its
Idempotency client built on first use, its keys bounded by that invocation's deadline). The use cases' services (S3, DynamoDB, EC2, Lambda clients) are built on first use by the lazy
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

    def __init__(self, handler: SlackRequestHandler, seen: "FirstUseIdempotency") -> None:
        self.bolt, self.seen = handler, seen
        self.app = handler.app

    def handle(self, event: dict, context: Any) -> dict:
        self.seen.register_lambda_context(context)
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        timestamp = headers.get("x-slack-request-timestamp")
        if timestamp is not None and not (str(timestamp).strip().isascii() and str(timestamp).strip().isdigit()):
            return dict(UNAUTHORIZED)
        failed = self.app.mlbot.failed_attempts
        answer = self.bolt.handle(event, context)
        if self.app.mlbot.failed_attempts > failed:  # Bolt logged it; failing the invocation makes Lambda retry
            raise LazyWorkFailed("the lazy work of this Slack request failed (logged above); Lambda retries it")
        return answer


class LazyWorkFailed(RuntimeError):
    """A lazy invocation whose work raised: Lambda retries the asynchronous invocation (twice), then sends it to
    the stack's failure queue."""


class FirstUseIdempotency:
    """The Idempotency store, built on its first `once` (in a lazy invocation): an acknowledgement never
    builds it. The invocation's context is kept until then."""

    def __init__(self, factory: Callable[[], Idempotency]) -> None:
        self._factory, self._store, self._lock, self._context = factory, None, threading.Lock(), None

    def register_lambda_context(self, context: Any) -> None:
        self._context = context
        if self._store is not None:
            self._store.register_lambda_context(context)

    def once(self, key: str, work: Callable[[], None]) -> bool:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    store = self._factory()
                    store.register_lambda_context(self._context)
                    self._store = store
        return self._store.once(key, work)


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
    return SlackLambda(handler, seen)


_handler: SlackLambda | None = None


@lambda_entry("mlbot-slack")
def handler(event: dict, context: Any) -> dict:
    """AWS Lambda entry point (template.yaml: bot.slack.lambda_entry.handler)."""
    global _handler
    if _handler is None:
        _handler = build_handler(settings_from_env())
    return _handler.handle(event, context)
