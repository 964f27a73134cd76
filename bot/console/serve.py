"""`mlbot serve`: the whole platform in one local process.

- `POST /slack/events` and `POST /telegram/webhook`: the same handlers as the Lambdas, fed the same API
  Gateway (HTTP API, payload 2.0) event shape; Slack's lazy work runs in threads here instead of a second
  Lambda invocation. A channel is served when its secrets are set (SLACK_SIGNING_SECRET and
  SLACK_BOT_TOKEN; TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET).
- For people without a public URL: Slack Socket Mode when SLACK_APP_TOKEN is set, and Telegram long
  polling when TELEGRAM_BOT_TOKEN is set without TELEGRAM_WEBHOOK_SECRET.
- `GET /health` and the trainer's routes; training runs in this process and its notifications go to the
  chat that asked (the notifier as an in-process subscriber).
"""
from __future__ import annotations

import base64
import logging
from concurrent.futures import ThreadPoolExecutor
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
    return {"version": "2.0", "routeKey": f"{request.method} {request.path}", "rawPath": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "queryStringParameters": dict(request.args) or None,
            "requestContext": {"http": {"method": request.method, "path": request.path}},
            "body": text, "isBase64Encoded": encoded}


def webhook_routes(settings: Settings, services) -> dict[str, Route]:
    """path -> Lambda-style handler, for each channel whose secrets are set."""
    routes: dict[str, Route] = {}
    if settings.slack_signing_secret and settings.slack_bot_token:
        from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner

        from bot.slack.lambda_entry import build_handler

        slack = build_handler(settings, services)
        slack.app.listener_runner.lazy_listener_runner = ThreadLazyListenerRunner(
            slack.app.logger, ThreadPoolExecutor(max_workers=4, thread_name_prefix="slack-lazy"))
        routes["/slack/events"] = slack.handle
    if settings.telegram_bot_token and settings.telegram_webhook_secret:
        from bot.telegram.lambda_entry import build_handler as build_telegram

        routes["/telegram/webhook"] = build_telegram(settings, services)
    return routes


def combined_app(routes: dict[str, Route], fallback: Callable) -> Callable:
    """A WSGI app: the webhook routes, everything else to ``fallback`` (the trainer's Flask app)."""

    def app(environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        route = routes.get(request.path)
        if route is None:
            return fallback(environ, start_response)
        if request.method != "POST":
            return Response("POST only", 405)(environ, start_response)
        answer = route(gateway_event(request), LocalContext())
        body = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            body = base64.b64decode(body)
        response = Response(body, int(answer.get("statusCode", 200)), headers=answer.get("headers") or {})
        return response(environ, start_response)

    return app


def run_serve(settings: Settings, port: int, host: str = "127.0.0.1") -> int:
    """Serve until interrupted; returns the exit code."""
    from werkzeug.serving import make_server

    from bot.notifier import chat_senders
    from bot.wiring import build_notification_log, build_services
    from handlers.notify import Notifier
    from platform_core.adapters.launchers import ThreadLauncher
    from trainer_ec2.app import create_app
    from trainer_ec2.wiring import build_trainer_context

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = build_trainer_context(settings)
    trainer = create_app(ctx)
    drainer = trainer.extensions["mlbot_drainer"]
    services = build_services(settings, launcher=ThreadLauncher(drainer.kick))
    ctx.events.subscribe(Notifier(chat_senders(settings), build_notification_log(settings), services.blobs))
    routes = webhook_routes(settings, services)
    background = start_socket_clients(settings, services)
    drainer.kick()  # jobs queued while nothing was serving
    server = make_server(host, port, combined_app(routes, trainer), threaded=True)
    served = ", ".join(["GET /health", "POST /train_*", "POST /predict_*", *(f"POST {r}" for r in routes)])
    print(f"mlbot serving on http://{host}:{server.server_port} ({served}){background}; Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def start_socket_clients(settings: Settings, services) -> str:
    """Slack Socket Mode and Telegram long polling, for a bot without a public URL; says what started."""
    started = []
    if settings.slack_app_token and settings.slack_bot_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        from bot.slack.app import build_app
        from bot.wiring import build_idempotency

        app = build_app(settings, services, build_idempotency(settings))
        SocketModeHandler(app, settings.slack_app_token).connect()
        started.append("Slack Socket Mode")
    if settings.telegram_bot_token and not settings.telegram_webhook_secret:
        from bot.telegram.polling import start_polling

        start_polling(settings, services)
        started.append("Telegram long polling")
    return f"; {' and '.join(started)} connected" if started else ""
