"""Load: concurrent signed Slack requests and Telegram updates against the bot's webhook entry points,
served by a local WSGI server (`mlbot serve`'s app), with the chat APIs played by local fakes.

Mixed commands (help, datasets, status, a DM, Telegram commands), plus re-deliveries of some events and
updates (as Slack and Telegram retry) to show that duplicates cause no second side effect. Reports the
acknowledgement latency percentiles, the throughput, and the side effects counted at the fake APIs.
"""
from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence
from urllib.parse import parse_qsl, urlencode

from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "tests" / "events"
TOKEN = "123456:load-test-token"
WEBHOOK_SECRET = "load-secret"


def _requests(n: int, slack_fake, sign) -> list[tuple[str, bytes, dict[str, str], str]]:
    """(path, body, headers, key) for n unique requests, half Slack and half Telegram."""
    out = []
    slash = dict(parse_qsl((EVENTS / "slack_slash_command.txt").read_text().strip()))
    dm = json.loads((EVENTS / "slack_message_im.json").read_text())
    texts = ["help", "datasets", "status colours", "status nothing"]
    for i in range(n // 2):
        if i % 2:
            fields = {**slash, "text": texts[i % len(texts)], "response_url": slack_fake.response_url(f"r{i}")}
            body = urlencode(fields)
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            event = json.loads(json.dumps(dm))
            event["event_id"] = f"EvLOAD{i}"
            event["event"]["text"] = texts[i % len(texts)]
            body = json.dumps(event)
            headers = {"Content-Type": "application/json"}
        out.append(("/slack/events", body.encode(), {**headers, **sign(body)},
                    "slack-command" if i % 2 else "slack-event"))
    for i in range(n - n // 2):
        update = {"update_id": 700000 + i, "message": {
            "message_id": i + 1, "date": 1735732800, "text": "/" + texts[i % len(texts)],
            "chat": {"id": 5000 + i % 7, "type": "private"}, "from": {"id": 5000 + i % 7, "is_bot": False,
                                                                     "first_name": "Load"}}}
        out.append(("/telegram/webhook", json.dumps(update).encode(),
                    {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
                    "telegram-update"))
    return out


def redeliveries(unique: list, count: int) -> list:
    """What Slack and Telegram resend: event callbacks (with X-Slack-Retry-Num) and updates, same ids.
    A slash command is never retried by Slack (typing it twice is two requests), so none is resent."""
    again = []
    events = [r for r in unique if r[3] == "slack-event"]
    updates = [r for r in unique if r[3] == "telegram-update"]
    for i in range(count):
        path, body, headers, key = (events if i % 2 == 0 else updates)[i // 2]
        if key == "slack-event":
            headers = {**headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        again.append((path, body, headers, key))
    return again


def run_load(n: int = 200, duplicates: int = 20, workers: int = 50) -> dict:
    """Send n unique requests plus ``duplicates`` re-deliveries concurrently; figures and side effects."""
    from bot.console.serve import combined_app, webhook_routes
    from bot.wiring import build_services
    from platform_core.config import Settings
    from tests.fake_slack import BOT_TOKEN, FakeSlack
    from tests.fake_telegram import FakeTelegram
    from tests.integration.test_slack import SECRET, sign

    slack = FakeSlack()
    with tempfile.TemporaryDirectory(prefix="mlbot-load-") as tmp, FakeTelegram(TOKEN) as telegram:
        settings = Settings(backend="local", home=Path(tmp) / "home", slack_signing_secret=SECRET,
                            slack_bot_token=BOT_TOKEN, slack_api_url=slack.api_url, telegram_bot_token=TOKEN,
                            telegram_webhook_secret=WEBHOOK_SECRET, telegram_api_url=telegram.api_url,
                            telegram_file_url=telegram.file_url)
        services = build_services(settings, launcher=lambda job: None)
        app = combined_app(webhook_routes(settings, services), lambda environ, start: [])
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        unique = _requests(n, slack, sign)
        sent = unique + redeliveries(unique, duplicates)
        results: list[tuple[int, float]] = []

        def post(request) -> tuple[int, float]:
            path, body, headers, _ = request
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
            start = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            status = connection.getresponse().status
            connection.close()
            return status, time.perf_counter() - start
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(post, sent))
        elapsed = time.perf_counter() - began
        expected_slack = sum(1 for path, *_ in unique if path == "/slack/events")
        deadline = time.monotonic() + 60  # Slack's lazy work runs in threads after the acknowledgement
        while time.monotonic() < deadline and _slack_effects(slack) < expected_slack:
            time.sleep(0.1)
        time.sleep(0.5)  # anything more would be a duplicate side effect: give it the chance to show
        server.shutdown()
        latencies = sorted(t for _, t in results)
        figures = {
            "requests": len(sent), "unique": len(unique), "duplicates": duplicates,
            "statuses": dict(sorted(Counter(s for s, _ in results).items())),
            "throughput_rps": len(sent) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            "max_ms": 1000 * latencies[-1],
            "slack_replies": _slack_effects(slack), "slack_expected": expected_slack,
            "telegram_replies": len(telegram.sent("sendMessage")),
            "telegram_expected": len(unique) - expected_slack,
        }
    slack.close()
    return figures


def _slack_effects(fake) -> int:
    """Answers the Slack users got: response_url posts and chat.postMessage calls."""
    return len(fake.responses) + sum(1 for c in fake.calls if c.method == "chat.postMessage")


def table(f: dict) -> str:
    return "\n".join([
        f"{f['requests']} concurrent requests ({f['unique']} unique, half Slack, half Telegram, plus "
        f"{f['duplicates']} re-deliveries of the same ids) against `mlbot serve`'s WSGI app on loopback, "
        "2 CPU cores:", "",
        "| statuses | throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | Slack answers (expected) "
        "| Telegram answers (expected) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {f['statuses']} | {f['throughput_rps']:.0f} | {f['p50_ms']:.0f} | {f['p95_ms']:.0f} | "
        f"{f['p99_ms']:.0f} | {f['max_ms']:.0f} | {f['slack_replies']} ({f['slack_expected']}) | "
        f"{f['telegram_replies']} ({f['telegram_expected']}) |"])


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would drown the table
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--duplicates", type=int, default=20)
    args = parser.parse_args(argv)
    print(table(run_load(args.n, args.duplicates)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
