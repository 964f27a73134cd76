"""`mlbot serve`'s webhook routes: the Lambda handlers behind one local WSGI app, fed API Gateway events."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from werkzeug.test import Client

from bot.console.serve import combined_app, webhook_routes
from bot.wiring import build_services
from platform_core.config import Settings
from tests.fake_slack import BOT_TOKEN, FakeSlack
from tests.integration.test_slack import EVENTS, SECRET, sign


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
    assert list(routes) == ["/slack/events"]  # no Telegram secrets in these settings


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
        assert list(routes) == ["/telegram/webhook"]
        client = Client(combined_app(routes, lambda environ, start_response: []))
        body = json.dumps(command("/help"))
        assert client.post("/telegram/webhook", data=body, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
                           ).status_code == 401
        ok = client.post("/telegram/webhook", data=body, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"})
        assert ok.status_code == 200 and "train NAME" in fake.sent("sendMessage")[-1].params["text"]
