"""The Slack Lambda's cold acknowledgement path: what a fresh container does before Slack's 3 seconds.

In a fresh `python -I` process: import the entry, build the handler as `handler` does, and acknowledge a
signed `/ml help` and a signed direct message (`datasets`). Before the ack nothing of the use cases exists: the
services factory has not run and neither Pillow, python-telegram-bot nor the handler modules are imported.
The event's dedupe is still a real conditional write before its ack (a retry of it is not redone), and the
lazy invocation then builds the services once and answers. `python -m bench.coldstart` measures it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from handlers.services import LazyServices
from tests.fake_slack import FakeSlack
from tests.integration.test_slack import SECRET

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("PIL", "telegram", "handlers.chat", "handlers.upload", "handlers.datasets", "lambda_predict",
         "platform_core.validation", "platform_core.adapters.aws_fleet", "platform_core.adapters.aws_queue")

CHILD = r"""
import json, sys
repo, home, api_url, response_url = sys.argv[1:5]
sys.path.insert(0, repo)

from pathlib import Path
import bot.slack.lambda_entry as entry
from bot import wiring
from platform_core.config import Settings
from urllib.parse import parse_qsl, urlencode
import hashlib, hmac, time

EVENTS = Path(repo) / "tests" / "events"

class LambdaContext:  # tests.integration.test_slack's, restated: importing that module loads the use cases
    function_name = "mlbot-slack"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlbot-slack"

class FakeLambda:
    def __init__(self):
        self.pending = []
    def invoke(self, FunctionName, InvocationType, Payload):
        assert InvocationType == "Event" and FunctionName == LambdaContext.invoked_function_arn
        self.pending.append(json.loads(Payload))
        return {"StatusCode": 202}

def sign(body):
    timestamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}

def gateway_event(body, headers):  # API Gateway HTTP API, payload 2.0
    return {"version": "2.0", "routeKey": "POST /slack/events", "rawPath": "/slack/events", "headers": headers,
            "requestContext": {"http": {"method": "POST", "path": "/slack/events"}}, "body": body,
            "isBase64Encoded": False}

built, real_build = [], wiring.build_services
def counting(settings, **kwargs):
    built.append(sorted(m for m in HEAVY if m in sys.modules))
    return real_build(settings, launcher=lambda job: None)
wiring.build_services = counting
if hasattr(entry, "build_services"):  # an entry that imported the name itself
    entry.build_services = counting

settings = Settings(backend="local", home=Path(home), slack_signing_secret=SECRET, slack_bot_token=BOT_TOKEN,
                    slack_api_url=api_url)
lazy = FakeLambda()
handler = entry.build_handler(settings, lambda_client=lazy)

def post(body, content_type, extra=None):
    headers = {"Content-Type": content_type, **sign(body), **(extra or {})}
    return handler.handle(gateway_event(body, headers), LambdaContext())

fields = dict(parse_qsl((EVENTS / "slack_slash_command.txt").read_text().strip()))
fields.update(text="help", response_url=response_url)
command = post(urlencode(fields), "application/x-www-form-urlencoded")
dm = json.loads((EVENTS / "slack_message_im.json").read_text())
dm["event"]["text"] = "datasets"  # unlike help, it reads the services
event = post(json.dumps(dm), "application/json")
at_ack = {"built": len(built), "loaded": sorted(m for m in HEAVY if m in sys.modules), "pending": len(lazy.pending)}
retry = post(json.dumps(dm), "application/json", {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
after_retry_pending = len(lazy.pending)

lazy_statuses = [handler.handle(lazy.pending.pop(0), LambdaContext())["statusCode"] for _ in range(len(lazy.pending))]
print(json.dumps({"command": command, "event": event, "retry": retry, "at_ack": at_ack,
                  "after_retry_pending": after_retry_pending, "lazy_statuses": lazy_statuses, "built": built,
                  "loaded_after": sorted(m for m in HEAVY if m in sys.modules)}))
"""


@pytest.mark.slow  # a fresh interpreter, so that what the ack imports is seen
def test_the_ack_builds_no_services_and_imports_no_use_case(tmp_path: Path) -> None:
    fake = FakeSlack()
    try:
        code = f"HEAVY = {HEAVY!r}\nSECRET = {SECRET!r}\nBOT_TOKEN = {fake.token!r}\n" + CHILD
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLBOT_", "SLACK_"))}
        proc = subprocess.run([sys.executable, "-I", "-c", code, str(REPO), str(tmp_path / "home"), fake.api_url,
                               fake.response_url("help")], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        responses = list(fake.responses)
        posted = [c.params.get("text", "") for c in fake.calls if c.method == "chat.postMessage"]
    finally:
        fake.close()

    assert out["command"]["statusCode"] == 200 and "Working on `/ml help`" in out["command"]["body"]
    assert out["event"]["statusCode"] == 200
    # before both acks: no services, none of the use cases' modules, the two lazy invocations asked for
    assert out["at_ack"] == {"built": 0, "loaded": [], "pending": 2}
    # the retry is acknowledged and handed on like the first delivery (no store is touched before an ack)...
    assert out["retry"]["statusCode"] == 200 and out["after_retry_pending"] == 3
    # ...and the lazy invocations import the use cases, build the services once, and answer the event once
    assert out["lazy_statuses"] == [200, 200, 200] and len(out["built"]) == 1
    assert "handlers.chat" in out["loaded_after"]
    assert len(responses) == 1 and "upload NAME" in responses[0]["text"]
    assert len(posted) == 1 and posted[0].startswith("No datasets yet")


def test_lazy_services_are_built_once_on_first_attribute_access() -> None:
    calls: list[int] = []

    class Built:
        blobs = "the blob store"

    def factory():
        calls.append(1)
        return Built()

    services = LazyServices(factory)  # type: ignore[arg-type]
    assert not services.built and calls == []
    with pytest.raises(AttributeError):
        services._private  # noqa: B018 - a private probe (copy, pickle) never builds
    threads = [threading.Thread(target=lambda: services.blobs) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert services.blobs == "the blob store" and services.built and calls == [1]
