"""`mlbot serve`'s webhook routes: the Lambda handlers behind one local WSGI app, fed API Gateway events;
and, over HTTP, its trainer routes behind the trainer token (a 0600 file under $MLBOT_HOME, or
MLBOT_TRAINER_TOKEN), with /health and the webhooks open."""
from __future__ import annotations

import base64
import json
import os
import stat
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.test import Client

from bot.console.serve import build_serve, combined_app, webhook_routes
from bot.wiring import build_services
from platform_core.config import Settings
from tests.fake_slack import BOT_TOKEN, FakeSlack
from tests.integration.test_slack import EVENTS, SECRET, sign
from tests.serving import serve_in_thread


@pytest.fixture
def served(tmp_path: Path):
    fake = FakeSlack()
    settings = Settings(backend="local", home=tmp_path / "home", slack_signing_secret=SECRET,
                        slack_bot_token=BOT_TOKEN, slack_api_url=fake.api_url)
    services = build_services(settings, launcher=lambda job: None)
    routes = webhook_routes(settings, services)
    fallback_calls = []

    def trainer(environ, start_response):
        fallback_calls.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status": "ok"}']
    try:
        yield Client(combined_app(routes, trainer)), fake, routes, fallback_calls
    finally:
        fake.close()


def test_only_configured_channels_are_routed(served) -> None:
    _, _, routes, _ = served
    assert list(routes) == ["/v1/", "/slack/events"]  # the REST API, and no Telegram secrets in these settings


def test_slack_events_reach_the_bolt_app_and_lazy_work_runs_in_a_thread(served) -> None:
    client, fake, _, _ = served
    challenge = (EVENTS / "slack_url_verification.json").read_text()
    answer = client.post("/slack/events", data=challenge, headers={**sign(challenge), "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.get_json()["challenge"].startswith("3eZbrw1aBm2")
    body = (EVENTS / "slack_message_im.json").read_text()
    assert client.post("/slack/events", data=body, headers={**sign(body), "Content-Type": "application/json"}) \
        .status_code == 200
    deadline = time.monotonic() + 10
    while not fake.posted() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.posted() == ["No datasets yet. Send a zip of images or a CSV with: upload NAME"]
    forged = client.post("/slack/events", data=body, headers={"Content-Type": "application/json"})
    assert forged.status_code == 401


def test_other_paths_go_to_the_trainer_app(served) -> None:
    client, _, _, fallback_calls = served
    assert json.loads(client.get("/health").data) == {"status": "ok"} and fallback_calls == ["/health"]
    assert client.get("/slack/events").status_code == 405


def test_telegram_updates_reach_the_webhook_handler(tmp_path: Path) -> None:
    from tests.fake_telegram import FakeTelegram
    from tests.integration.test_telegram import command

    token = "123456:serve-test-token"
    with FakeTelegram(token) as fake:
        settings = Settings(backend="local", home=tmp_path / "home", telegram_bot_token=token,
                            telegram_webhook_secret="s3cret", telegram_api_url=fake.api_url,
                            telegram_file_url=fake.file_url)
        routes = webhook_routes(settings, build_services(settings, launcher=lambda job: None))
        assert list(routes) == ["/v1/", "/telegram/webhook"]
        client = Client(combined_app(routes, lambda environ, start_response: []))
        body = json.dumps(command("/help"))
        assert client.post("/telegram/webhook", data=body, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
                           ).status_code == 401
        ok = client.post("/telegram/webhook", data=body, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"})
        assert ok.status_code == 200 and "train NAME" in fake.sent("sendMessage")[-1].params["text"]


# --- the trainer routes of `mlbot serve`, over HTTP ------------------------------------------------------

TRAINER_ROUTES = ["/train_image_classification", "/train_sentiment_analysis", "/predict_image_classification",
                  "/predict_sentiment_analysis"]


@pytest.fixture
def serve_settings(tmp_path: Path):
    fake = FakeSlack()
    try:
        yield Settings(backend="local", home=tmp_path / "home", slack_signing_secret=SECRET,
                       slack_bot_token=BOT_TOKEN, slack_api_url=fake.api_url), fake
    finally:
        fake.close()


def listen(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serve_in_thread(server)
    return server, f"http://127.0.0.1:{server.server_port}"


def call(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_keeps_its_trainer_routes_behind_a_token_file_only_its_user_can_read(serve_settings) -> None:
    settings, fake = serve_settings
    served = build_serve(settings)
    server, url = listen(served.app)
    try:
        path = settings.home / "trainer.token"
        assert served.token_at == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text()
        assert len(token) >= 40 and token not in served.token_at
        forged = json.dumps({"tenant": "console:me", "name": "ghost", "job_id": "forged", "enqueued_at": 0,
                             "reply_to": {"channel": "slack", "channel_id": "C-ATTACKER"}, "text": "hi"}).encode()
        wrong = {"none": {}, "wrong": {"Authorization": "Bearer nope"},
                 "same length": {"Authorization": "Bearer " + ("A" if token[0] != "A" else "B") + token[1:]},
                 "basic": {"Authorization": "Basic " + base64.b64encode(f"u:{token}".encode()).decode()}}
        for route in TRAINER_ROUTES:
            for name, headers in wrong.items():
                status, body = call(url + route, forged, {"Content-Type": "application/json", **headers})
                assert status == 401 and json.loads(body)["error"] == "unauthorized", (route, name)
            status, body = call(url + route, forged, {"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {token}"})
            assert status == 404 and json.loads(body)["error"] == "not_found", route  # through: no such dataset
        from platform_core.adapters.local_jobs import SqliteJobQueue

        jobs = SqliteJobQueue(settings.home / "jobs.sqlite3")
        assert jobs.queued() == [] and jobs.get("forged") is None
        status, body = call(url + "/health")
        assert status == 200 and json.loads(body)["status"] == "ok" and token.encode() not in body
        challenge = (EVENTS / "slack_url_verification.json").read_text()  # the webhook needs no trainer token
        status, body = call(url + "/slack/events", challenge.encode(),
                            {**sign(challenge), "Content-Type": "application/json"})
        assert status == 200 and json.loads(body)["challenge"].startswith("3eZbrw1aBm2")
        message = (EVENTS / "slack_message_im.json").read_text()
        assert call(url + "/slack/events", message.encode(), {"Content-Type": "application/json"})[0] == 401
    finally:
        server.shutdown()
        server.server_close()


def test_each_start_writes_a_new_token_and_narrows_an_old_files_mode(serve_settings) -> None:
    settings, _ = serve_settings
    path = settings.home / "trainer.token"
    path.parent.mkdir(parents=True)
    path.write_text("old-token")
    os.chmod(path, 0o644)
    served = build_serve(settings)
    server, url = listen(served.app)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() != "old-token"
        assert call(url + "/predict_sentiment_analysis", b"{}", {"Authorization": "Bearer old-token"})[0] == 401
    finally:
        server.shutdown()
        server.server_close()


def test_serve_uses_the_configured_trainer_token_and_writes_no_file(serve_settings) -> None:
    settings, _ = serve_settings
    served = build_serve(replace(settings, trainer_token="configured-token-0123456789"))
    server, url = listen(served.app)
    try:
        assert served.token_at == "MLBOT_TRAINER_TOKEN" and not (settings.home / "trainer.token").exists()
        body = json.dumps({"tenant": "console:me", "name": "ghost", "text": "hi"}).encode()
        headers = {"Content-Type": "application/json"}
        assert call(url + "/predict_sentiment_analysis", body, headers)[0] == 401
        assert call(url + "/predict_sentiment_analysis", body,
                    {**headers, "Authorization": "Bearer configured-token-0123456789"})[0] == 404
    finally:
        server.shutdown()
        server.server_close()
