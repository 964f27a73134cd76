"""Any Slack workspace installs the app (Bolt's OAuth flow, against the fake Slack server): the install redirect,
the state checked once, oauth.v2.access exchanged and the installation stored; two workspaces each answered
and notified with their own token; uninstalling removes the token and the team's later events are
acknowledged and ignored. The Lambda entry is called as API Gateway calls it."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlparse

import pytest
from moto import mock_aws

from bot.notifier import chat_senders
from bot.slack.installations import bot_token, installation_store
from bot.slack.lambda_entry import build_handler
from handlers.notify import Notifier
from platform_core.adapters.local_events import LocalEventBus
from platform_core.backend import backend_for
from platform_core.config import Settings
from tests import infra
from tests.fake_slack import FakeSlack
from tests.fakes import FakeTrainer
from tests.integration.test_slack import EVENTS, SECRET, FakeLambda, LambdaContext, gateway_event, sign
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend, memory_services
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TOKENS = {"TALPHA": "xoxb-alpha-111", "TBETA": "xoxb-beta-222"}
GRID_TOKENS = {"TGRID": "xoxb-grid-333", "EORG": "xoxb-org-444"}
DAY = 86400.0


class Workspaces:
    def __init__(self, tmp_path: Path, fake: FakeSlack, backend=None) -> None:
        self.fake = fake
        fake.tokens.clear()  # nobody is installed yet
        oauth = dict(slack_signing_secret=SECRET, slack_api_url=fake.api_url, slack_client_id=fake.client_id,
                     slack_client_secret=fake.client_secret)
        self.backend = backend or MemoryBackend(Settings(backend="local", home=tmp_path / "home"))
        self.settings = replace(self.backend.settings, **oauth)
        self.backend.settings = self.settings
        self.services = memory_services(self.backend)
        self.lazy = FakeLambda()
        self.handler = build_handler(self.settings, self.services, lambda_client=self.lazy, backend=self.backend)
        self.bus = LocalEventBus()
        self.trainer = FakeTrainer(["red", "green", "blue"])
        self.ctx = build_trainer_context(self.settings, events=self.bus, backend=self.backend,
                                         trainers={"image": self.trainer, "sentiment": self.trainer})
        self.bus.subscribe(Notifier(chat_senders(self.settings, self.backend), self.backend.notifications,
                                    self.backend.blobs, self.backend.idempotency))
        self.deliveries = 0

    def get(self, path: str, query: dict | None = None, cookies: list[str] | None = None) -> dict:
        event = {"version": "2.0", "routeKey": f"GET {path}", "rawPath": path, "headers": {},
                 "queryStringParameters": query, "cookies": cookies or [], "body": "", "isBase64Encoded": False,
                 "requestContext": {"http": {"method": "GET", "path": path}}}
        return self.handler.handle(event, LambdaContext())

    def install(self, team: str, enterprise: str | None = None, org_wide: bool = False) -> dict:
        """An admin of ``team`` clicks "Add to Slack", approves, and Slack sends them back with a code."""
        start = self.get("/slack/install")
        state = parse_qs(urlparse(start["headers"]["location"]).query)["state"][0]
        code = f"code-{team}-{self.deliveries}"
        self.deliveries += 1
        self.fake.grant(code, team, TOKENS.get(team) or GRID_TOKENS[team], enterprise, org_wide)
        return self.get("/slack/oauth_redirect", {"code": code, "state": state},
                        cookies=[f"slack-app-oauth-state={state}"])

    def post(self, body: str, content_type: str) -> dict:
        answer = self.handler.handle(gateway_event(body, {"Content-Type": content_type, **sign(body)}),
                                     LambdaContext())
        while self.lazy.pending:
            assert self.handler.handle(self.lazy.pending.pop(0), LambdaContext())["statusCode"] == 200
        return answer

    def command(self, team: str, text: str) -> dict:
        fields = dict(parse_qsl((EVENTS / "slack_slash_command.txt").read_text().strip()))
        fields.pop("enterprise_id"), fields.pop("enterprise_name")  # plain workspaces, not an Enterprise Grid org
        fields.update(text=text, team_id=team, response_url=self.fake.response_url(f"{team}-{text.split()[0]}"))
        return self.post(urlencode(fields), "application/x-www-form-urlencoded")

    def event(self, team: str, name: str, enterprise: str | None = None, org_wide: bool = False, **changes) -> dict:
        payload = json.loads((EVENTS / name).read_text())
        self.deliveries += 1
        payload["event_id"] = f"{payload['event_id']}{self.deliveries}"
        payload["team_id"] = team
        payload["enterprise_id"] = enterprise
        payload["is_enterprise_install"] = org_wide
        payload["authorizations"] = [{"enterprise_id": enterprise, "team_id": None if org_wide else team,
                                      "user_id": f"UBOT{team}", "is_bot": True, "is_enterprise_install": org_wide}]
        payload["event"].update(changes)
        return self.post(json.dumps(payload), "application/json")


@pytest.fixture(params=["memory", pytest.param("aws", marks=pytest.mark.slow)])
def slack(request: pytest.FixtureRequest, tmp_path: Path):
    """Installations on files under $MLBOT_HOME, or in the stack's bucket under moto (S3): the S3 variants run
    in `make test` (about 1 s each, so `make test-fast` keeps to the memory ones)."""
    fake = FakeSlack()
    try:
        if request.param == "memory":
            yield Workspaces(tmp_path, fake)
            return
        request.getfixturevalue("aws_credentials")
        request.getfixturevalue("atomic_moto_writes")
        with mock_aws():
            settings = infra.deploy(Settings(backend="aws", bucket="mlbot-oauth", region="us-east-1"))
            yield Workspaces(tmp_path, fake, backend_for(settings))
    finally:
        fake.close()


def test_install_redirects_to_slack_with_the_client_id_the_scopes_and_a_state(slack: Workspaces) -> None:
    start = slack.get("/slack/install")
    assert start["statusCode"] == 302
    target = urlparse(start["headers"]["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "slack.com", "/oauth/v2/authorize")
    query = parse_qs(target.query)
    assert query["client_id"] == [slack.fake.client_id]
    assert query["scope"][0].split(",") == list(slack.settings.slack_scopes)
    assert len(query["state"][0]) >= 32 and f"slack-app-oauth-state={query['state'][0]}" in start["headers"]["set-cookie"]


def test_the_redirect_exchanges_the_code_and_stores_the_workspaces_installation(slack: Workspaces) -> None:
    done = slack.install("TALPHA")
    assert done["statusCode"] == 200, done
    store = installation_store(slack.settings, slack.backend)
    assert bot_token(store, "TALPHA") == TOKENS["TALPHA"] and bot_token(store, "TBETA") is None
    assert "oauth.v2.access" in slack.fake.methods()
    if slack.backend.name == "aws":  # in the bucket, under the prefix only the Slack function may write
        keys = [o["Key"] for o in slack.backend.client("s3").list_objects_v2(Bucket=slack.settings.bucket,
                                                                             Prefix="slack-")["Contents"]]
        assert keys and all(k.startswith(f"slack-installations/{slack.fake.client_id}/") for k in keys), keys
    else:
        stored = slack.settings.home / "slack-installations"
        assert oct(stored.stat().st_mode & 0o777) == "0o700"  # bot tokens: this user only


@pytest.mark.parametrize("case", ["wrong state", "reused state", "no cookie"])
def test_a_redirect_with_a_wrong_or_reused_state_is_refused_and_stores_nothing(slack: Workspaces, case: str) -> None:
    start = slack.get("/slack/install")
    state = parse_qs(urlparse(start["headers"]["location"]).query)["state"][0]
    slack.fake.grant("code-1", "TALPHA", TOKENS["TALPHA"])
    if case == "reused state":
        slack.fake.grant("code-0", "TBETA", TOKENS["TBETA"])
        assert slack.get("/slack/oauth_redirect", {"code": "code-0", "state": state},
                         cookies=[f"slack-app-oauth-state={state}"])["statusCode"] == 200
    sent = "f" * 32 if case == "wrong state" else state
    cookies = [] if case == "no cookie" else [f"slack-app-oauth-state={sent}"]
    refused = slack.get("/slack/oauth_redirect", {"code": "code-1", "state": sent}, cookies=cookies)
    assert refused["statusCode"] in (400, 401)
    assert bot_token(installation_store(slack.settings, slack.backend), "TALPHA") is None
    assert "code-1" in slack.fake.grants  # never exchanged


def test_two_workspaces_are_each_answered_and_notified_with_their_own_token(slack: Workspaces) -> None:
    for team in TOKENS:
        assert slack.install(team)["statusCode"] == 200
    for team in TOKENS:
        info = slack.fake.add_file(f"F{team}", "colours.zip", _zip(), team=team)
        slack.event(team, "slack_event_file_share.json", text="upload colours", files=[info])
    assert {t for t in slack.fake.tokens_used("chat.postMessage")} == set(TOKENS)
    assert [p for p in slack.fake.downloads if p[1] == "Bearer " + TOKENS["TALPHA"]]  # each file with its own
    for team in TOKENS:
        assert slack.services.records.get(f"slack:{team}", "colours") is not None
        slack.event(team, "slack_message_im.json", text="train colours")
    before = len(slack.fake.calls)
    assert drain(slack.ctx) == 2
    notices = [c for c in slack.fake.calls[before:] if c.method in ("chat.postMessage", "chat.update")]
    finished = {slack.fake.tokens[c.authorization.removeprefix("Bearer ")] for c in notices
                if str(c.params.get("text", "")).startswith("Training 'colours' finished")}
    assert finished == set(TOKENS)  # each workspace's notice went with that workspace's token


def test_uninstall_removes_the_token_and_later_events_are_acknowledged_and_ignored(slack: Workspaces) -> None:
    for team in TOKENS:
        slack.install(team)
    slack.event("TALPHA", "slack_message_im.json", text="datasets")
    answered = len(slack.fake.posted())
    uninstalled = slack.event("TALPHA", "slack_message_im.json", type="app_uninstalled")
    assert uninstalled["statusCode"] == 200
    slack.fake.revoke(TOKENS["TALPHA"])
    store = installation_store(slack.settings, slack.backend)
    assert bot_token(store, "TALPHA") is None and bot_token(store, "TBETA") == TOKENS["TBETA"]
    later = slack.event("TALPHA", "slack_message_im.json", text="datasets")
    assert later["statusCode"] == 200 and len(slack.fake.posted()) == answered  # acknowledged, ignored
    slack.event("TBETA", "slack_message_im.json", text="datasets")
    assert len(slack.fake.posted()) == answered + 1  # the other workspace is unaffected


def test_the_manifest_asks_for_what_the_install_flow_uses_and_nothing_more() -> None:
    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "slack-app-manifest.yaml").read_text())
    oauth = manifest["oauth_config"]
    assert tuple(oauth["scopes"]["bot"]) == Settings().slack_scopes  # what /slack/install asks for
    assert [u.rsplit("/", 2)[-2:] for u in oauth["redirect_urls"]] == [["slack", "oauth_redirect"]]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"app_uninstalled", "tokens_revoked", "message.im", "app_home_opened"} <= set(events)
    home = manifest["features"]["app_home"]
    assert home["messages_tab_enabled"] is True and home["home_tab_enabled"] is True  # DMs, and the Home tab


def test_the_home_tab_lists_the_workspaces_datasets_and_is_refreshed_when_a_training_ends(slack: Workspaces) -> None:
    from bot.slack.home import HomeRefresher
    from bot.slack.sender import SlackSender

    for team in TOKENS:
        slack.install(team)
    info = slack.fake.add_file("FHOME", "colours.zip", _zip(), team="TALPHA")
    slack.event("TALPHA", "slack_event_file_share.json", text="upload colours", files=[info], user="UALICE")
    slack.event("TALPHA", "slack_message_im.json", type="app_home_opened",
                tab="home", user="UALICE")
    (opened,) = [c for c in slack.fake.calls if c.method == "views.publish"]
    assert opened.params["user_id"] == "UALICE" and "Bearer " + TOKENS["TALPHA"] == opened.authorization
    home = json.dumps(opened.params["view"])
    assert "colours" in home and "Training Not Started" in home and "no model yet" in home
    slack.event("TBETA", "slack_message_im.json", type="app_home_opened", tab="home", user="UBOB")
    beta = [c for c in slack.fake.calls if c.method == "views.publish"][-1]
    assert "colours" not in json.dumps(beta.params["view"])  # another workspace sees only its own
    senders = chat_senders(slack.settings, slack.backend)
    slack.bus.subscribe(HomeRefresher(senders["slack"].client_for, slack.backend.records))
    assert isinstance(senders["slack"], SlackSender)
    slack.event("TALPHA", "slack_message_im.json", text="train colours", user="UALICE")
    assert drain(slack.ctx) == 1
    refreshed = [c for c in slack.fake.calls if c.method == "views.publish"][-1]
    view = json.dumps(refreshed.params["view"])
    assert refreshed.params["user_id"] == "UALICE" and "Training Successful" in view and "model version 1" in view
    assert "validation accuracy 90.0%" in view


def _stored(slack: Workspaces, team: str) -> list[str]:
    return [k for top in ("datasets", "models", "feedback", "feedback-pending")
            for k in slack.backend.blobs.list(f"{top}/slack:{team}/")]


def test_an_uninstalled_workspaces_data_is_kept_for_the_retention_period_then_deleted(slack: Workspaces) -> None:
    from bot.reconciler import run
    from platform_core.retention import departures

    for team in TOKENS:
        slack.install(team)
        info = slack.fake.add_file(f"F{team}", "colours.zip", _zip(), team=team)
        slack.event(team, "slack_event_file_share.json", text="upload colours", files=[info])
    slack.event("TALPHA", "slack_message_im.json", type="app_uninstalled")
    (gone,) = departures(slack.backend.blobs)
    assert gone.tenant == "slack:TALPHA"
    now = gone.at
    kept = len(_stored(slack, "TALPHA"))
    assert kept and run(slack.backend, clock=lambda: now + 29 * DAY) is not None
    assert slack.services.records.get("slack:TALPHA", "colours") is not None and len(_stored(slack, "TALPHA")) == kept

    slack.install("TALPHA")  # back within the retention period: everything stays, for good
    assert departures(slack.backend.blobs) == []
    run(slack.backend, clock=lambda: now + 60 * DAY)
    assert slack.services.records.get("slack:TALPHA", "colours") is not None

    slack.event("TALPHA", "slack_message_im.json", type="app_uninstalled")
    (gone,) = departures(slack.backend.blobs)
    run(slack.backend, clock=lambda: gone.at + (slack.settings.departed_retention_days + 1) * DAY)
    assert slack.services.records.list("slack:TALPHA") == [] and _stored(slack, "TALPHA") == []
    assert departures(slack.backend.blobs) == []
    assert slack.services.records.get("slack:TBETA", "colours") is not None and _stored(slack, "TBETA")


def test_a_workspace_of_an_enterprise_grid_org_is_answered_and_notified_with_its_installation(slack: Workspaces) -> None:
    assert slack.install("TGRID", enterprise="EGRID")["statusCode"] == 200
    assert bot_token(installation_store(slack.settings, slack.backend), "TGRID", "EGRID") == GRID_TOKENS["TGRID"]
    info = slack.fake.add_file("FGRID", "colours.zip", _zip(), team="TGRID")
    slack.event("TGRID", "slack_event_file_share.json", enterprise="EGRID", text="upload colours", files=[info])
    slack.event("TGRID", "slack_message_im.json", enterprise="EGRID", text="train colours")
    before = len(slack.fake.calls)
    assert drain(slack.ctx) == 1
    notices = [c for c in slack.fake.calls[before:] if c.method == "chat.postMessage"]
    assert notices and {c.authorization for c in notices} == {"Bearer " + GRID_TOKENS["TGRID"]}
    assert any(str(c.params.get("text", "")).startswith("Training 'colours' finished") for c in notices)


def test_an_org_wide_install_is_one_tenant_notified_with_the_organisations_token(slack: Workspaces) -> None:
    assert slack.install("EORG", enterprise="EORG", org_wide=True)["statusCode"] == 200
    info = slack.fake.add_file("FORG", "colours.zip", _zip(), team="EORG")  # the organisation's token reads it
    slack.event("TANY", "slack_event_file_share.json", enterprise="EORG", org_wide=True, text="upload colours",
                files=[info])
    assert slack.services.records.get("slack:EORG", "colours") is not None
    slack.event("TANY", "slack_message_im.json", enterprise="EORG", org_wide=True, text="train colours")
    before = len(slack.fake.calls)
    assert drain(slack.ctx) == 1
    notices = [c for c in slack.fake.calls[before:] if c.method == "chat.postMessage"]
    assert notices and {c.authorization for c in notices} == {"Bearer " + GRID_TOKENS["EORG"]}


def test_slack_is_asked_who_a_token_is_once_per_container_not_twice_per_request(slack: Workspaces) -> None:
    slack.install("TALPHA")  # (the install flow asks once itself, for the bot's id)
    before = slack.fake.methods().count("auth.test")
    for _ in range(3):  # each: the acknowledgement, then the lazy invocation
        slack.event("TALPHA", "slack_message_im.json", text="datasets")
    assert slack.fake.methods().count("auth.test") - before == 1
    assert len(slack.fake.posted()) == 3
