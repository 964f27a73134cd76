"""AWS Lambda entry of the REST API (`ANY /v1/{proxy+}` on the stack's HTTP API, payload format 2.0).

Two kinds of event reach it: an HTTP request, answered by bot.api.routes.RestApi exactly as `mlbot serve`
answers it; and S3's "Object Created" event through EventBridge, for a file posted with an upload form
(`POST /v1/datasets/{name}/upload-url`), which is validated and stored then (RestApi.accept). The API is
built once per container from the environment (chat secrets from Secrets Manager: notices of jobs started
with a key go to the chat it was made in).
"""
from __future__ import annotations

import logging
from typing import Any

from bot.api.routes import RestApi
from bot.wiring import build_services, settings_from_env
from platform_core.adapters.aws_powertools import lambda_entry
from platform_core.backend import Backend, backend_for
from platform_core.config import Settings

log = logging.getLogger(__name__)
_api: RestApi | None = None


def build_api(settings: Settings, services=None, *, backend: Backend | None = None) -> RestApi:
    """The REST API over ``settings``' backend (its rate limiter, its stores), or over ``services``."""
    backend = backend or backend_for(settings)
    services = services or build_services(settings, backend=backend)
    return RestApi(services, limiter=backend.rate_limiter, per_minute=settings.api_rate_per_minute)


def api() -> RestApi:
    """This container's API, built on first use."""
    global _api
    if _api is None:
        _api = build_api(settings_from_env())
    return _api


@lambda_entry("mlbot-api")
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        key = str(((event.get("detail") or {}).get("object") or {}).get("key") or "")
        upload = api().accept(key)  # a store that fails raises: EventBridge's asynchronous invocation retries
        if upload is None:
            log.info("no waiting upload for %s (handled before, or not an upload)", key)
        return {"ok": True, "upload": upload.upload_id if upload else None}
    return api().handle(event, context)
