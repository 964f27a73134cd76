"""The Slack channel through its Lambda entry, on the in-memory fakes: signed real-format payloads in, a local
fake Slack out.

Bolt's lazy listeners re-invoke the function asynchronously; here a fake Lambda client records those
invocations and the test plays them, so what is acknowledged at once and what happens later are seen apart.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
import logging
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from bot.slack.blocks import escape, message
from bot.slack.lambda_entry import build_handler
from bot.slack.sender import SlackSender, web_client
from handlers.commands import Button, Reply
from handlers.notify import Notifier
from platform_core.config import Settings
from platform_core.adapters.local_events import LocalEventBus
from tests.fake_slack import BOT_TOKEN, FakeSlack
from tests.fakes import FakeTrainer, png
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend, memory_services
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

EVENTS = Path(__file__).resolve().parents[1] / "events"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


class LambdaContext:
    function_name = "mlbot-slack"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlbot-slack"


class FakeLambda:
    """boto3's Lambda client as Bolt's lazy runner uses it: records the asynchronous self-invocations."""

    def __init__(self) -> None:
        self.pending: list[dict] = []
        self.refuse_next = False  # the next invocation is refused (throttled, or Lambda unavailable)

    def invoke(self, FunctionName: str, InvocationType: str, Payload: str) -> dict:
        assert InvocationType == "Event" and FunctionName == LambdaContext.invoked_function_arn
        if self.refuse_next:
            self.refuse_next = False
            raise RuntimeError("TooManyRequestsException: Rate exceeded")
        self.pending.append(json.loads(Payload))
        return {"StatusCode": 202}


def sign(body: str, *, secret: str = SECRET, timestamp: str | None = None) -> dict[str, str]:
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def gateway_event(body: str, headers: dict[str, str], *, encode: bool = False) -> dict:
    """An API Gateway HTTP API (payload 2.0) request as the Lambda receives it."""
    return {"version": "2.0", "routeKey": "POST /slack/events", "rawPath": "/slack/events", "headers": headers,
            "requestContext": {"http": {"method": "POST", "path": "/slack/events"}},
            "body": base64.b64encode(body.encode()).decode() if encode else body, "isBase64Encoded": encode}


class World:
    def __init__(self, tmp_path: Path, fake: FakeSlack) -> None:
        self.fake = fake
        self.settings = Settings(backend="local", home=tmp_path / "home", slack_signing_secret=SECRET,
                                 slack_bot_token=BOT_TOKEN, slack_api_url=fake.api_url)
        self.backend = MemoryBackend(self.settings)
        self.trainer = FakeTrainer(["red", "green", "blue"])
        self.bus = LocalEventBus()
        self.ctx = build_trainer_context(self.settings, events=self.bus, backend=self.backend,
                                         trainers={"image": self.trainer, "sentiment": self.trainer})
        self.services = memory_services(self.backend)
        self.lambda_client = FakeLambda()
        self.deliveries = 0
        self.handler = build_handler(self.settings, self.services, client=web_client(self.settings),
                                     lambda_client=self.lambda_client, backend=self.backend)
        self.bus.subscribe(Notifier({"slack": SlackSender(web_client(self.settings))},
                                    self.backend.notifications, self.services.blobs, self.backend.idempotency))

    def post(self, body: str, *, content_type: str, headers: dict[str, str] | None = None,
             encode: bool = False) -> dict:
        sent = {"Content-Type": content_type, **(sign(body) if headers is None else headers)}
        return self.handler.handle(gateway_event(body, sent, encode=encode), LambdaContext())

    def command(self, text: str, *, team: str = "T0001", user: str = "U2147483697") -> dict:
        fields = dict(parse_qsl((EVENTS / "slack_slash_command.txt").read_text().strip()))
        fields.update(text=text, team_id=team, user_id=user, response_url=self.fake.response_url(text.split()[0] if text.split() else "empty"))
        return self.post(urlencode(fields), content_type="application/x-www-form-urlencoded")

    def event(self, name: str, **changes: Any) -> dict:
        """A recorded event with changes to its ``event``; each call is a new delivery (its own event_id)."""
        payload = json.loads((EVENTS / name).read_text())
        self.deliveries += 1
        payload["event_id"] = f"{payload['event_id']}{self.deliveries}"
        for key, value in changes.items():
            payload["event"][key] = value
        return self.post(json.dumps(payload), content_type="application/json")

    def run_lazy(self) -> int:
        """Play the asynchronous invocations Bolt asked for, as Lambda would."""
        ran = 0
        while self.lambda_client.pending:
            response = self.handler.handle(self.lambda_client.pending.pop(0), LambdaContext())
            assert response["statusCode"] == 200, response
            ran += 1
        return ran

    def share(self, text: str, data: bytes, name: str, file_id: str = "F0123ABCD", **file_changes: Any) -> dict:
        info = {**self.fake.add_file(file_id, name, data), **file_changes}
        return self.event("slack_event_file_share.json", text=text, files=[info])


@pytest.fixture
def world(tmp_path: Path):
    fake = FakeSlack()
    try:
        yield World(tmp_path, fake)
    finally:
        fake.close()


def test_url_verification_answers_the_challenge_only_when_signed(world: World) -> None:
    body = (EVENTS / "slack_url_verification.json").read_text()
    answer = world.post(body, content_type="application/json")
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["challenge"].startswith("3eZbrw1aBm2")
    forged = world.post(body, content_type="application/json", headers={})
    assert forged["statusCode"] == 401


@pytest.mark.parametrize("case", ["altered body", "missing", "empty", "v1 prefix", "old timestamp",
                                  "future timestamp", "non-numeric timestamp", "superscript timestamp",
                                  "wrong secret"])
def test_a_bad_signature_is_refused_with_401_and_does_nothing(world: World, case: str) -> None:
    body = (EVENTS / "slack_message_im.json").read_text()
    headers = sign(body)
    if case == "altered body":
        body = body.replace("datasets", "status x")
    elif case == "missing":
        headers = {}
    elif case == "empty":
        headers["X-Slack-Signature"] = ""
    elif case == "v1 prefix":
        headers["X-Slack-Signature"] = headers["X-Slack-Signature"].replace("v0=", "v1=")
    elif case == "old timestamp":
        headers = sign(body, timestamp=str(int(time.time()) - 301))
    elif case == "future timestamp":
        headers = sign(body, timestamp=str(int(time.time()) + 301))
    elif case == "non-numeric timestamp":
        headers = {**sign(body), "X-Slack-Request-Timestamp": "yesterday"}
    elif case == "superscript timestamp":  # str.isdigit() says yes; int() says no (it was a 500)
        headers = sign(body, timestamp="\u00b2")
    elif case == "wrong secret":
        headers = sign(body, secret="not-the-secret")
    answer = world.post(body, content_type="application/json", headers=headers)
    assert answer["statusCode"] == 401
    assert world.lambda_client.pending == [] and world.fake.calls == []


def test_header_names_in_any_case_and_a_base64_body_are_accepted(world: World) -> None:
    body = (EVENTS / "slack_message_im.json").read_text()
    headers = {k.lower(): v for k, v in sign(body).items()}
    assert world.post(body, content_type="application/json", headers=headers, encode=True)["statusCode"] == 200
    assert world.run_lazy() == 1
    assert world.fake.posted() == ["No datasets yet. Send a zip of images or a CSV with: upload NAME"]


def test_ssl_check_gets_200(world: World) -> None:
    body = (EVENTS / "slack_ssl_check.txt").read_text().strip()
    assert world.post(body, content_type="application/x-www-form-urlencoded")["statusCode"] == 200


def test_a_command_is_acknowledged_at_once_even_when_the_work_is_slow(world: World, monkeypatch) -> None:
    import handlers.chat

    real = handlers.chat.dispatch
    started, release = threading.Event(), threading.Event()

    def held(*args, **kwargs):  # the work, held until the test lets it go
        started.set()
        if not release.wait(10):
            raise AssertionError("the work ran before the command was acknowledged")
        return real(*args, **kwargs)
    monkeypatch.setattr(handlers.chat, "dispatch", held)
    answer = world.command("datasets")
    assert answer["statusCode"] == 200 and "Working on" in answer["body"]
    assert not started.is_set() and world.fake.responses == []  # nothing done yet: the work is a second invocation
    release.set()
    assert world.run_lazy() == 1
    assert started.is_set() and world.fake.responses[-1]["text"].startswith("No datasets yet")


def test_slash_commands_answer_through_the_response_url(world: World) -> None:
    world.command("help")
    world.command("status nothing")
    world.command("frobnicate")
    world.run_lazy()
    help_, missing, unknown = world.fake.responses
    assert help_["response_type"] == "in_channel" and "upload NAME" in help_["text"]
    assert missing["response_type"] == "ephemeral" and "nothing" in missing["text"]
    assert unknown["text"].startswith("I don't know 'frobnicate'")
    assert help_["blocks"][-1]["type"] == "actions"  # the reply's buttons


def test_an_upload_is_downloaded_with_the_token_stored_and_answered_in_its_thread(world: World) -> None:
    world.share("upload colours my colour swatches", _zip(), "colours.zip")
    world.run_lazy()
    record = world.services.records.get("slack:T0001", "colours")
    assert record is not None and record.owner == "U2147483697" and record.description == "my colour swatches"
    assert world.fake.downloads == [("/files/F0123ABCD/colours.zip", f"Bearer {BOT_TOKEN}")]
    reply = next(c for c in world.fake.calls if c.method == "chat.postMessage")
    assert reply.params["thread_ts"] == "1700000000.000200" and reply.params["channel"] == "C2147483705"
    assert reply.params["text"].startswith("Stored image dataset 'colours'")


def test_one_file_seen_as_file_shared_and_as_a_message_is_processed_once(world: World) -> None:
    world.fake.add_file("F0123ABCD", "colours.zip", _zip(), comment="upload colours")
    world.event("slack_file_shared.json")
    world.share("upload colours", _zip(), "colours.zip")
    world.run_lazy()
    assert len(world.fake.downloads) == 1
    assert sum(text.startswith("Stored") for text in world.fake.posted()) == 1


def test_a_retried_event_causes_one_side_effect(world: World) -> None:
    world.fake.add_file("F0123ABCD", "colours.zip", _zip())
    payload = json.loads((EVENTS / "slack_event_file_share.json").read_text())
    payload["event"]["files"] = [world.fake.file_infos["F0123ABCD"]]
    body = json.dumps(payload)
    first = world.post(body, content_type="application/json")
    retry = world.post(body, content_type="application/json", headers={**sign(body), "X-Slack-Retry-Num": "1",
                                                                       "X-Slack-Retry-Reason": "http_timeout"})
    assert first["statusCode"] == retry["statusCode"] == 200
    assert world.run_lazy() == 2  # each delivery is acknowledged and handed on; the work is done once
    assert len(world.fake.downloads) == 1 and sum(t.startswith("Stored") for t in world.fake.posted()) == 1


def test_a_retry_after_a_refused_self_invocation_does_the_work(world: World) -> None:
    world.fake.add_file("F0123ABCD", "colours.zip", _zip())
    payload = json.loads((EVENTS / "slack_event_file_share.json").read_text())
    payload["event"]["files"] = [world.fake.file_infos["F0123ABCD"]]
    body = json.dumps(payload)
    world.lambda_client.refuse_next = True
    first = world.post(body, content_type="application/json")
    assert world.lambda_client.pending == [] and first["statusCode"] != 200  # so Slack delivers it again
    retry = world.post(body, content_type="application/json", headers={**sign(body), "X-Slack-Retry-Num": "1",
                                                                       "X-Slack-Retry-Reason": "http_error"})
    assert retry["statusCode"] == 200 and world.run_lazy() == 1
    assert sum(t.startswith("Stored") for t in world.fake.posted()) == 1


def test_a_lazy_attempt_that_failed_is_done_by_lambdas_retry_of_it(world: World) -> None:
    world.event("slack_message_im.json", text="datasets")
    (invocation,) = world.lambda_client.pending
    world.fake.error_next["chat.postMessage"] = "internal_error"  # Slack fails the answer once
    with pytest.raises(Exception):
        world.handler.handle(copy.deepcopy(invocation), LambdaContext())  # the invocation fails: Lambda retries it
    world.handler.handle(copy.deepcopy(invocation), LambdaContext())
    world.handler.handle(copy.deepcopy(invocation), LambdaContext())  # a duplicate after it finished: nothing
    answers = [c for c in world.fake.calls if c.method == "chat.postMessage"]
    assert len(answers) == 2 and len(world.fake.posted()) == 2  # the failed try, then one answer


def test_the_bots_own_messages_and_edits_are_ignored(world: World) -> None:
    world.event("slack_message_im.json", bot_id="BBOT", user="UBOT")
    world.event("slack_message_im.json", subtype="message_changed")
    world.run_lazy()
    assert [m for m in world.fake.methods() if m.startswith("chat.")] == []


def test_an_image_shared_with_predict_is_classified(world: World) -> None:
    world.share("upload colours", _zip(), "colours.zip")
    world.run_lazy()
    world.command("train colours")
    world.run_lazy()
    drain(world.ctx)
    world.share("predict colours", png((240, 10, 10)), "red.png", file_id="F0PHOTO")
    world.run_lazy()
    assert world.fake.posted()[-1].startswith("red (")


def test_a_file_declared_too_large_or_on_a_foreign_host_is_never_downloaded(world: World) -> None:
    world.share("upload big", b"x", "big.zip", size=900 * 2**20)
    world.share("upload evil", _zip(), "evil.zip", file_id="F0EVIL",
                url_private_download="https://attacker.example/steal.zip")
    world.run_lazy()
    assert world.fake.downloads == []
    big, evil = [t for t in world.fake.posted()]
    assert "900.0 MB" in big and "limit is 50 MB" in big
    assert "could not be fetched" in evil


def test_a_sign_in_page_instead_of_the_file_says_to_reinstall_and_stores_nothing(world: World) -> None:
    from tests.fake_slack import LOGIN_PAGE

    world.share("upload colours", LOGIN_PAGE, "colours.zip")  # what a token without files:read gets
    world.run_lazy()
    assert "files:read" in world.fake.posted()[-1] and "Reinstall" in world.fake.posted()[-1]
    assert world.services.records.get("slack:T0001", "colours") is None


def test_the_token_is_not_sent_along_a_redirect(world: World) -> None:
    info = world.fake.add_file("F0MOVED", "colours.zip", _zip())
    moved = info["url_private_download"].replace("/files/", "/redirect/")
    world.share("upload colours", _zip(), "colours.zip", file_id="F0MOVED", url_private_download=moved)
    world.run_lazy()
    (first, first_auth), (second, second_auth) = world.fake.downloads
    assert first.startswith("/redirect/") and first_auth == f"Bearer {BOT_TOKEN}"
    assert second.startswith("/files/") and second_auth is None  # the fake then serves its sign-in page
    assert "files:read" in world.fake.posted()[-1]


def test_user_text_echoed_into_slack_is_escaped(world: World) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("<b>&co/notes.txt", b"not an image")
    world.share("upload tricky", archive.getvalue(), "x<y>&z.zip")
    world.run_lazy()
    text = world.fake.posted()[-1]
    assert "&lt;b&gt;&amp;co" in text and "<b>" not in text
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_training_notifications_edit_one_message_then_post_the_summary_and_matrix(world: World, monkeypatch) -> None:
    from slack_sdk.http_retry import builtin_handlers

    slept: list[float] = []
    monkeypatch.setattr(builtin_handlers, "time", SimpleNamespace(sleep=slept.append))  # the SDK's wait, recorded
    world.share("upload colours", _zip(), "colours.zip")
    world.command("train colours")
    world.run_lazy()
    world.fake.rate_limit_next["chat.postMessage"] = 1  # the first notification meets a 429 and is retried
    assert drain(world.ctx) == 1
    assert len(slept) == 1 and 1 <= slept[0] < 2  # after the Retry-After Slack sent
    methods = [m for m in world.fake.methods() if m.startswith(("chat.", "files."))]
    assert methods.count("chat.update") >= 2  # progress edits one message
    final = [c for c in world.fake.calls if c.method == "chat.postMessage"][-1].params["text"]
    assert final.startswith("Training 'colours' finished: validation accuracy 90.0%")
    assert {"files.getUploadURLExternal", "files.completeUploadExternal"} <= set(methods)
    assert world.fake.uploads and world.fake.uploads[-1].startswith(b"\x89PNG")  # the confusion matrix


def test_another_workspace_cannot_see_or_use_a_dataset(world: World) -> None:
    world.share("upload colours", _zip(), "colours.zip")
    world.run_lazy()
    for text in ("status colours", "train colours", "datasets"):
        world.command(text, team="T0OTHER")
    world.run_lazy()
    status, train, datasets = world.fake.responses[-3:]
    assert "colours" in status["text"] and status["response_type"] == "ephemeral"
    assert train["response_type"] == "ephemeral"
    assert datasets["text"].startswith("No datasets yet")
    assert world.services.jobs.active_for("slack:T0001", "colours") is None


def test_no_token_or_secret_reaches_a_log_line(world: World, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        world.share("upload colours", _zip(), "colours.zip")
        world.command("train colours")
        world.run_lazy()
        drain(world.ctx)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert text and BOT_TOKEN not in text and SECRET not in text
    assert BOT_TOKEN not in repr(world.settings)


def test_blocks_carry_escaped_text_and_command_buttons() -> None:
    built = message(Reply("a <b> & c", buttons=(Button("Train x", "train x"),)))
    assert built["text"] == "a &lt;b&gt; &amp; c"
    assert built["blocks"][1]["elements"][0]["value"] == "train x"


def test_a_zip_shared_with_predict_comes_back_as_a_csv_file(world: World) -> None:
    world.share("upload colours", _zip(), "colours.zip")
    world.command("train colours")
    world.run_lazy()
    drain(world.ctx)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.png", png((250, 5, 5)))
    world.share("predict colours", archive.getvalue(), "batch.zip", file_id="F0BATCH")
    world.run_lazy()
    assert world.fake.posted()[-1].startswith("Predicted 1 of 1 inputs with 'colours': red 1.")
    assert world.fake.uploads[-1].decode().splitlines()[1].startswith("a.png,red,")


def test_notifications_for_a_channel_without_the_bot_go_to_the_user_directly(world: World) -> None:
    world.share("upload colours", _zip(), "colours.zip")
    world.run_lazy()
    world.fake.not_member.add("C2147483705")  # /ml train used in a channel the bot was never invited to
    world.command("train colours")
    world.run_lazy()
    assert drain(world.ctx) == 1
    direct = [c for c in world.fake.calls if c.method == "chat.postMessage" and c.params["channel"] == "U2147483697"]
    assert direct and direct[0].params["text"].startswith("(I can't post in the channel where you asked")
    edits = [c for c in world.fake.calls if c.method == "chat.update"]
    assert edits and {c.params["channel"] for c in edits} == {"D2147483697"}  # progress edited in the DM
    assert any("Training 'colours' finished" in c.params["text"] for c in direct)


# --- whose request it is: no workspace, Slack Connect, Enterprise Grid ------------------------------------


def test_a_command_naming_no_workspace_is_refused_never_a_shared_tenant(world: World) -> None:
    fields = dict(parse_qsl((EVENTS / "slack_slash_command.txt").read_text().strip()))
    fields.update(text="datasets", response_url=world.fake.response_url("none"))
    fields.pop("team_id")
    assert world.post(urlencode(fields), content_type="application/x-www-form-urlencoded")["statusCode"] == 200
    world.run_lazy()
    assert world.fake.responses[-1]["text"].startswith("This request names no Slack workspace")
    assert world.services.records.list("slack:None") == []


def test_a_user_from_another_organisation_in_a_shared_channel_is_refused(world: World) -> None:
    """Slack Connect: the author's own workspace (user_team) is not the one the event is for; its datasets
    are not theirs, and nothing is stored under either tenant."""
    info = world.fake.add_file("FCONNECT", "colours.zip", _zip())
    world.event("slack_event_file_share.json", text="upload colours", files=[info], user_team="TOTHERORG")
    world.run_lazy()
    assert world.fake.posted()[-1].startswith("You are in a channel shared with another organisation")
    assert world.services.records.list("slack:T0001") == [] and world.services.records.list("slack:TOTHERORG") == []
    assert world.fake.downloads == []  # the file was never fetched


def test_an_org_wide_install_answers_in_the_enterprises_tenant(world: World) -> None:
    payload = json.loads((EVENTS / "slack_message_im.json").read_text())
    payload.update(enterprise_id="E0001", is_ext_shared_channel=False)
    payload["authorizations"] = [{"enterprise_id": "E0001", "team_id": None, "user_id": "UBOT", "is_bot": True,
                                  "is_enterprise_install": True}]
    info = world.fake.add_file("FGRID", "colours.zip", _zip())
    payload["event"].update(subtype="file_share", text="upload colours", files=[info])
    world.post(json.dumps(payload), content_type="application/json")
    world.run_lazy()
    assert world.services.records.get("slack:E0001", "colours") is not None
    assert world.services.records.list("slack:T0001") == []


def test_only_the_owner_or_a_workspace_admin_may_delete_a_dataset(world: World) -> None:
    world.share("upload colours", _zip(), "colours.zip")  # uploaded by U2147483697
    world.run_lazy()
    world.command("delete colours confirm", user="UMALLORY")
    world.run_lazy()
    assert "or an admin of this chat can delete it" in world.fake.responses[-1]["text"]
    assert world.services.records.get("slack:T0001", "colours") is not None
    assert [c.params["user"] for c in world.fake.calls if c.method == "users.info"] == ["UMALLORY"]
    world.fake.admins.add("UADMIN")
    world.command("delete colours confirm", user="UADMIN")
    world.run_lazy()
    assert world.fake.responses[-1]["text"].startswith("Deleted 'colours'")
    assert world.services.records.get("slack:T0001", "colours") is None


def test_a_new_api_key_is_shown_only_to_the_workspace_admin_who_asked(world: World) -> None:
    world.fake.admins.add("UADMIN")
    world.command("apikey new ci", user="UADMIN")
    world.run_lazy()
    answer = world.fake.responses[-1]
    assert answer["response_type"] == "ephemeral" and "mlbot_" in answer["text"]  # never posted in the channel
    world.command("apikey list", user="UMEMBER")
    world.run_lazy()
    listed = world.fake.responses[-1]
    assert listed["response_type"] == "in_channel" and "(ci), made by UADMIN" in listed["text"]
    assert "mlbot_" not in listed["text"]
    world.command("apikey new", user="UMEMBER")
    world.run_lazy()
    assert "Only an admin of this chat" in world.fake.responses[-1]["text"]
