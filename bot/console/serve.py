"""`mlbot serve`: the whole platform in one local process.

- `POST /slack/events` and `POST /telegram/webhook`: the same handlers as the Lambdas, fed the same API
  Gateway (HTTP API, payload 2.0) event shape; Slack's lazy work runs in threads here instead of a second
  Lambda invocation. A channel is served when its secrets are set (SLACK_SIGNING_SECRET and
  SLACK_BOT_TOKEN; TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET).
- For people without a public URL: Slack Socket Mode when SLACK_APP_TOKEN is set, and Telegram long
  polling when TELEGRAM_BOT_TOKEN is set without TELEGRAM_WEBHOOK_SECRET.
- `GET /health` (open) and the trainer's HTTP API (`POST /train_*`, `POST /predict_*`), which on this
  port too requires `Authorization: Bearer <token>`: MLBOT_TRAINER_TOKEN when set, else a token made at
  start and written to $MLBOT_HOME/trainer.token (mode 0600). Training runs in this process (the chat
  handlers queue through a ThreadLauncher, no token needed) and its notifications go to the chat that asked
  (the notifier as an in-process subscriber).
"""
from __future__ import annotations

import base64
import logging
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from werkzeug.wrappers import Request, Response

from platform_core.config import Settings

log = logging.getLogger(__name__)
Route = Callable[[dict, Any], dict]


class LocalContext:
    """What the Lambda handlers read from their context object."""

    function_name = "mlbot-serve"
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:mlbot-serve"


def gateway_event(request: Request) -> dict:
    """The API Gateway HTTP API (payload 2.0) event for a request, as the Lambdas receive it."""
    body = request.get_data()
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    cookies = [c.strip() for c in request.headers.get("Cookie", "").split(";") if c.strip()]
    return {"version": "2.0", "routeKey": f"{request.method} {request.path}", "rawPath": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()}, "cookies": cookies,
            "queryStringParameters": dict(request.args) or None,
            "requestContext": {"http": {"method": request.method, "path": request.path}},
            "body": text, "isBase64Encoded": encoded}


REST_PREFIX = "/v1/"


def webhook_routes(settings: Settings, services, backend=None) -> dict[str, Route]:
    """path -> Lambda-style handler, for each channel whose secrets are set, and the REST API under /v1/
    (always: it wants an API key on every route)."""
    from bot.api.lambda_entry import build_api

    routes: dict[str, Route] = {REST_PREFIX: build_api(settings, services, backend=backend).handle}
    if settings.slack_signing_secret and (settings.slack_bot_token or settings.slack_client_id):
        from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner

        from bot.slack.lambda_entry import build_handler

        slack = build_handler(settings, services, backend=backend)
        slack.app.listener_runner.lazy_listener_runner = ThreadLazyListenerRunner(
            slack.app.logger, ThreadPoolExecutor(max_workers=4, thread_name_prefix="slack-lazy"))
        routes["/slack/events"] = slack.handle
        if settings.slack_client_id:  # Bolt's install flow (GET): the same handler routes them by query
            routes["/slack/install"] = routes["/slack/oauth_redirect"] = slack.handle
    if settings.telegram_bot_token and settings.telegram_webhook_secret:
        from bot.telegram.lambda_entry import build_handler as build_telegram

        routes["/telegram/webhook"] = build_telegram(settings, services, backend=backend)
    return routes


def combined_app(routes: dict[str, Route], fallback: Callable) -> Callable:
    """A WSGI app: the webhook routes, everything else to ``fallback`` (the trainer's Flask app, which
    checks the trainer token itself)."""

    def app(environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        rest = request.path.startswith(REST_PREFIX) and REST_PREFIX in routes  # the REST API: every method
        route = routes[REST_PREFIX] if rest else routes.get(request.path)
        if route is None:
            return fallback(environ, start_response)
        install = request.path in ("/slack/install", "/slack/oauth_redirect")
        if not rest and request.method != ("GET" if install else "POST"):
            return Response("GET only" if install else "POST only", 405)(environ, start_response)
        answer = route(gateway_event(request), LocalContext())
        body = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            body = base64.b64decode(body)
        response = Response(body, int(answer.get("statusCode", 200)), headers=answer.get("headers") or {})
        return response(environ, start_response)

    return app


def trainer_token(settings: Settings) -> tuple[str, str]:
    """The token of the trainer's routes and where it is: MLBOT_TRAINER_TOKEN when set, else a new one
    written to $MLBOT_HOME/trainer.token, readable by this user only."""
    if settings.trainer_token:
        return settings.trainer_token, "MLBOT_TRAINER_TOKEN"
    token = secrets.token_urlsafe(32)
    path = settings.home / "trainer.token"
    write_private(path, token)
    return token, str(path)


def write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` with mode 0600 (created so; an existing file is truncated and narrowed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


@dataclass
class Served:
    app: Callable  # the WSGI app: webhook routes, then the trainer's Flask app
    routes: dict[str, Route]
    token_at: str  # where the trainer token is (a file, or the variable that set it); never the token
    background: str  # what start_socket_clients connected
    drainer: Any


def build_serve(settings: Settings) -> Served:
    """Everything `mlbot serve` serves, wired and started (the drainer kicked), but not yet listening."""
    from bot.notifier import chat_senders
    from bot.wiring import build_services
    from handlers.notify import Notifier
    from platform_core.adapters.launchers import ThreadLauncher
    from platform_core.backend import backend_for
    from trainer_ec2.app import create_app
    from trainer_ec2.wiring import build_trainer_context

    backend = backend_for(settings)
    ctx = build_trainer_context(settings, backend=backend)
    token, token_at = trainer_token(settings)
    trainer = create_app(ctx, token=token)
    drainer = trainer.extensions["mlbot_drainer"]
    services = build_services(settings, launcher=ThreadLauncher(drainer.kick), backend=backend)
    senders = chat_senders(settings, backend)
    ctx.events.subscribe(Notifier(senders, backend.notifications, backend.blobs, backend.idempotency))
    if "slack" in senders:  # the asker's App Home tab, refreshed when their training ends
        from bot.slack.home import HomeRefresher

        ctx.events.subscribe(HomeRefresher(senders["slack"].client_for, backend.records))
    routes = webhook_routes(settings, services, backend)
    background = start_socket_clients(settings, services, backend)
    if settings.slack_client_id:  # uninstalled workspaces' data, deleted after the retention period
        start_retention_sweeps(settings, backend)
    drainer.kick()  # jobs queued while nothing was serving
    return Served(combined_app(routes, trainer), routes, token_at, background, drainer)


def run_serve(settings: Settings, port: int, host: str = "127.0.0.1") -> int:
    """Serve until interrupted; returns the exit code."""
    from werkzeug.serving import make_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    served = build_serve(settings)
    server = make_server(host, port, served.app, threaded=True)
    listed = ", ".join(["GET /health", "POST /train_*", "POST /predict_*",
                        *(f"POST {r}" if r != REST_PREFIX else "the REST API under /v1/ (GET /v1/openapi.json)"
                          for r in served.routes)])
    print(f"mlbot serving on http://{host}:{server.server_port} ({listed}){served.background}; "
          f"the trainer routes need 'Authorization: Bearer <token>', token in {served.token_at}; Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


RETENTION_SWEEP_S = 3600.0


def start_retention_sweeps(settings: Settings, backend, every_s: float = RETENTION_SWEEP_S) -> threading.Event:
    """What the reconciler Lambda does on AWS, in a daemon thread: every hour (and at once) the data of
    workspaces that uninstalled longer than MLBOT_DEPARTED_RETENTION_DAYS ago is deleted. Set the returned
    event to stop it."""
    from platform_core.retention import purge_departed

    stop = threading.Event()

    def sweep() -> None:
        while not stop.is_set():
            try:
                purge_departed(backend.records, backend.blobs, time.time(), settings.departed_retention_days * 86400.0)
            except Exception:  # logged; the next sweep tries again
                log.exception("the retention sweep failed")
            stop.wait(every_s)

    threading.Thread(target=sweep, name="retention-sweep", daemon=True).start()
    return stop


def start_socket_clients(settings: Settings, services, backend) -> str:
    """Slack Socket Mode and Telegram long polling, for a bot without a public URL; says what started."""
    started = []
    if settings.slack_app_token and settings.slack_bot_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        from bot.slack.app import build_app

        app = build_app(settings, services, backend.idempotency, backend=backend)
        SocketModeHandler(app, settings.slack_app_token).connect()
        started.append("Slack Socket Mode")
    if settings.telegram_bot_token and not settings.telegram_webhook_secret:
        from bot.telegram.polling import start_polling

        start_polling(settings, services, backend=backend)
        started.append("Telegram long polling")
    return f"; {' and '.join(started)} connected" if started else ""
