"""The trainer's Flask app through its test client: 202 with a job id, training off the request thread,
idempotent job ids, clear 4xx answers, and predictions from the stored model; and over real HTTP, its
credential: without `Authorization: Bearer <token>` every route but /health answers 401 and changes
nothing, and nothing from a body decides who is told or where a job stands in the queue."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from platform_core.config import Settings
from platform_core.jobs import Job, ReplyTo
from platform_core.records import TrainingStatus
from tests.fakes import FakeTrainer, png
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend, memory_services
from tests.serving import serve_in_thread
from trainer_ec2.app import create_app
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

ROOT = Path(__file__).resolve().parents[2]
TENANT = "slack:T1"
TOKEN = "trainer-test-token-0123456789abcdef"


@pytest.fixture
def trainer_app():
    backend = MemoryBackend()
    trainer = FakeTrainer(["red", "green", "blue"])
    ctx = build_trainer_context(backend.settings, backend=backend, trainers={"image": trainer, "sentiment": trainer})
    services = memory_services(backend)
    assert dispatch(Command("upload", TENANT, "u1", ("colours",), Attachment("c.zip", _zip())), services).ok
    app = create_app(ctx, token=TOKEN)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client, ctx, trainer, app.extensions["mlbot_drainer"]


def _wait_idle(drainer, timeout: float = 20) -> None:
    """Until the background drain has ended; a drain still running after ``timeout`` fails the test."""
    end = time.monotonic() + timeout
    while drainer.busy():
        assert time.monotonic() < end, f"the trainer was still draining after {timeout} s"
        time.sleep(0.02)


def test_health_answers_with_the_machine_state(trainer_app) -> None:
    client, ctx, _, _ = trainer_app
    body = client.get("/health").get_json()
    assert body == {"status": "ok", "machine": "local", "pool": "cpu", "state": "Free", "job": None}


def test_train_answers_202_at_once_and_trains_off_the_request_thread(trainer_app) -> None:
    client, ctx, trainer, drainer = trainer_app
    trainer.release.clear()  # hold the training so the answer provably comes first
    response = client.post("/train_image_classification", json={"tenant": TENANT, "name": "colours"})
    assert response.status_code == 202
    job_id = response.get_json()["job_id"]
    assert trainer.started.wait(10)
    assert ctx.records.get(TENANT, "colours").training_status == TrainingStatus.IN_PROGRESS.value
    assert client.get("/health").get_json()["state"] == "Busy"
    trainer.release.set()
    _wait_idle(drainer)
    assert ctx.jobs.get(job_id).state == "succeeded"
    assert ctx.records.get(TENANT, "colours").training_status == TrainingStatus.SUCCESSFUL.value


def test_the_same_job_id_posted_twice_trains_once(trainer_app) -> None:
    client, _, trainer, drainer = trainer_app
    for _ in range(2):
        r = client.post("/train_image_classification", json={"tenant": TENANT, "name": "colours", "job_id": "j-1"})
        assert r.status_code == 202 and r.get_json()["job_id"] == "j-1"
        _wait_idle(drainer)
    assert len(trainer.calls) == 1


@pytest.mark.parametrize("path, body, status, code", [
    ("/train_image_classification", None, 400, "bad_request"),
    ("/train_image_classification", {"tenant": TENANT, "name": "nope"}, 404, "not_found"),
    ("/train_image_classification", {"tenant": "slack:OTHER", "name": "colours"}, 404, "not_found"),
    ("/train_sentiment_analysis", {"tenant": TENANT, "name": "colours"}, 400, "wrong_kind"),
    ("/train_image_classification", {"tenant": TENANT, "name": "colours", "recipe": "magic"}, 400, "wrong_kind"),
    ("/train_image_classification", {"tenant": TENANT, "name": "../x"}, 400, "invalid_name"),
])
def test_bad_train_requests_get_a_clear_4xx(trainer_app, path, body, status, code) -> None:
    client, _, trainer, _ = trainer_app
    response = client.post(path, json=body) if body is not None else client.post(path, data="not json")
    assert response.status_code == status and response.get_json()["error"] == code
    assert response.get_json()["message"]
    assert trainer.calls == []


def test_predict_answers_from_the_stored_model(trainer_app) -> None:
    client, _, _, drainer = trainer_app
    client.post("/train_image_classification", json={"tenant": TENANT, "name": "colours"})
    _wait_idle(drainer)
    image = base64.b64encode(png((10, 240, 10))).decode()
    answer = client.post("/predict_image_classification", json={"tenant": TENANT, "name": "colours", "image": image})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["label"] == "green" and 0.33 < body["confidence"] <= 1 and body["model_version"] == 1
    assert [label for label, _ in body["top"]][0] == "green" and len(body["top"]) == 3


@pytest.mark.parametrize("body, status, code", [
    ({"tenant": TENANT, "name": "colours", "image": "%%%"}, 400, "bad_input"),
    ({"tenant": TENANT, "name": "colours", "image": base64.b64encode(b"not an image").decode()}, 400, "bad_input"),
    ({"tenant": TENANT, "name": "colours"}, 400, "bad_input"),
    ({"tenant": TENANT, "name": "ghost", "text": "hi"}, 404, "not_found"),
])
def test_bad_predictions_get_an_error_object(trainer_app, body, status, code) -> None:
    client, _, _, drainer = trainer_app
    client.post("/train_image_classification", json={"tenant": TENANT, "name": "colours"})
    _wait_idle(drainer)
    response = client.post("/predict_image_classification", json=body)
    assert response.status_code == status and response.get_json()["error"] == code


def test_predict_before_training_says_to_train_first(trainer_app) -> None:
    client, _, _, _ = trainer_app
    response = client.post("/predict_image_classification",
                           json={"tenant": TENANT, "name": "colours", "image": base64.b64encode(png((1, 1, 1))).decode()})
    assert response.status_code == 400 and response.get_json()["error"] == "not_trained"
    assert "Train it first" in response.get_json()["message"]


# --- the credential, over real HTTP -------------------------------------------------------------------

CHAT_A = ReplyTo("slack", "C-ASKED", team="T1")
FORGED = {"channel": "slack", "channel_id": "C-ATTACKER", "team_id": "T-EVIL"}


class CountingDrainer:
    """Stands in for the background drainer: counts kicks, trains nothing (the test drains by hand)."""

    def __init__(self) -> None:
        self.kicks = 0

    def kick(self) -> None:
        self.kicks += 1

    def busy(self) -> bool:
        return False


@pytest.fixture
def http_trainer():
    """The trainer app on 127.0.0.1 (werkzeug, as gunicorn would serve it), with one dataset and one job
    already queued by the chat functions (reply_to CHAT_A); the stores are the in-memory fakes."""
    backend = MemoryBackend()
    trainer = FakeTrainer(["red", "green", "blue"])
    ctx = build_trainer_context(backend.settings, backend=backend, trainers={"image": trainer, "sentiment": trainer})
    services = memory_services(backend)
    assert dispatch(Command("upload", TENANT, "u1", ("colours",), Attachment("c.zip", _zip())), services).ok
    assert dispatch(Command("upload", TENANT, "u1", ("shapes",), Attachment("s.zip", _zip())), services).ok
    queued = dispatch(Command("train", TENANT, "u1", ("colours",)), services, reply_to=CHAT_A)
    assert queued.ok, queued.text
    drainer = CountingDrainer()
    server = make_server("127.0.0.1", 0, create_app(ctx, token=TOKEN, drainer=drainer), threaded=True)
    serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.server_port}", ctx, drainer, ctx.jobs.get(queued.data["job_id"]), trainer
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


WRONG_CREDENTIALS = {
    "none": {},
    "wrong token": bearer("wrong"),
    "same length, one character off": bearer(TOKEN[:-1] + ("x" if TOKEN[-1] != "x" else "y")),
    "token as a prefix": bearer(TOKEN[:-4]),
    "token with more after it": bearer(TOKEN + "0"),
    "basic with the token as password": {"Authorization": "Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()},
    "the right token without a scheme": {"Authorization": TOKEN},
    "the right token under another scheme": {"Authorization": f"Token {TOKEN}"},
    "empty bearer": {"Authorization": "Bearer "},
    "the token in another header": {"X-Trainer-Token": TOKEN},
}
ROUTES = ["/train_image_classification", "/train_sentiment_analysis", "/predict_image_classification",
          "/predict_sentiment_analysis"]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("credential", list(WRONG_CREDENTIALS), ids=list(WRONG_CREDENTIALS))
def test_without_the_token_every_trainer_route_answers_401_and_changes_nothing(http_trainer, path, credential) -> None:
    url, ctx, drainer, queued, trainer = http_trainer
    before = {n: ctx.records.get(TENANT, n) for n in ("colours", "shapes")}
    forged = {"tenant": TENANT, "name": "shapes", "job_id": "forged-1", "reply_to": FORGED, "enqueued_at": 0,
              "requested_by": "mallory", "image": base64.b64encode(png((1, 2, 3))).decode(), "text": "hi"}
    status, body = post(url + path, forged, WRONG_CREDENTIALS[credential])
    assert status == 401 and body["error"] == "unauthorized" and body["message"]
    assert TOKEN not in json.dumps(body)
    assert [j.job_id for j in ctx.jobs.queued()] == [queued.job_id] and ctx.jobs.get("forged-1") is None
    assert ctx.jobs.get(queued.job_id) == queued
    assert {n: ctx.records.get(TENANT, n) for n in ("colours", "shapes")} == before
    assert drainer.kicks == 0 and trainer.calls == []


def test_the_token_is_checked_before_the_body_is_read(http_trainer) -> None:
    url, ctx, _, _, _ = http_trainer
    assert post(url + "/train_image_classification", b"not json {")[0] == 401  # 400 would mean it was parsed
    assert post(url + "/train_image_classification", b"not json {", bearer())[0] == 400


@pytest.mark.parametrize("enqueued_at", [0, 1])
def test_a_forged_reply_to_and_queue_place_for_a_queued_job_have_no_effect(http_trainer, enqueued_at) -> None:
    """A job queued by the chat functions, POSTed again with another chat's reply_to and an early
    enqueued_at: unauthenticated, 401 and nothing; authenticated, the stored job wins over the body."""
    url, ctx, drainer, queued, _ = http_trainer
    later = ctx.jobs.submit(Job(job_id="later", tenant=TENANT, name="shapes", kind="image", recipe="fast",
                                dataset_path=ctx.records.get(TENANT, "shapes").dataset_path, dataset_version=1,
                                requested_by="u2", reply_to=ReplyTo("console")))
    forged = {"tenant": "slack:T-EVIL", "name": "shapes", "job_id": "later", "reply_to": FORGED,
              "enqueued_at": enqueued_at, "requested_by": "mallory"}
    assert post(url + "/train_image_classification", forged)[0] == 401
    assert ctx.jobs.get("later") == later and drainer.kicks == 0
    status, body = post(url + "/train_image_classification", forged, bearer())
    assert status == 202 and body == {"job_id": "later", "state": "queued", "position": 2}  # still behind
    assert ctx.jobs.get("later") == later and drainer.kicks == 1
    assert [j.job_id for j in ctx.jobs.queued()] == [queued.job_id, "later"]
    assert ctx.jobs.get(queued.job_id).reply_to == CHAT_A
    assert drain(ctx) == 2  # the stored jobs run, in their stored order, for their stored chats
    assert [ctx.jobs.get(j).reply_to for j in (queued.job_id, "later")] == [CHAT_A, ReplyTo("console")]


def test_an_authenticated_new_job_is_stamped_by_the_queue_not_the_body(http_trainer) -> None:
    url, ctx, drainer, queued, _ = http_trainer
    reply_to = {"channel": "telegram", "chat_id": "42"}
    status, body = post(url + "/train_image_classification",
                        {"tenant": TENANT, "name": "shapes", "job_id": "api-1", "enqueued_at": 1,
                         "reply_to": reply_to, "requested_by": "script"}, bearer())
    assert status == 202 and body["job_id"] == "api-1" and body["position"] == 2 and drainer.kicks == 1
    job = ctx.jobs.get("api-1")
    assert job.enqueued_at > queued.enqueued_at > 1 and job.enqueued_at > time.time() - 60
    assert (job.tenant, job.name, job.reply_to, job.requested_by) == (TENANT, "shapes", ReplyTo("telegram", "42"),
                                                                      "script")
    assert [j.job_id for j in ctx.jobs.queued()] == [queued.job_id, "api-1"]


@pytest.mark.parametrize("field, value", [("reply_to", {"chat_id": 42}), ("reply_to", ["C1"]),
                                          ("reply_to", "C1"), ("reply_to", []), ("requested_by", 7), ("job_id", 12),
                                          ("job_id", "../x")])
def test_an_authenticated_new_job_with_malformed_fields_gets_400(http_trainer, field, value) -> None:
    url, ctx, drainer, queued, _ = http_trainer
    status, body = post(url + "/train_image_classification", {"tenant": TENANT, "name": "shapes", field: value},
                        bearer())
    assert status == 400 and body["error"] == "bad_request"
    assert [j.job_id for j in ctx.jobs.queued()] == [queued.job_id] and drainer.kicks == 0


def test_authenticated_predictions_answer_and_health_stays_open(http_trainer) -> None:
    url, ctx, _, _, _ = http_trainer
    assert drain(ctx) == 1
    image = base64.b64encode(png((10, 240, 10))).decode()
    status, body = post(url + "/predict_image_classification", {"tenant": TENANT, "name": "colours", "image": image},
                        bearer())
    assert status == 200 and body["label"] == "green"
    with urllib.request.urlopen(url + "/health", timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok", "machine": "local", "pool": "cpu", "state": "Free",
                                               "job": None}


def test_an_app_made_without_a_token_refuses_everything_but_health(tmp_path: Path) -> None:
    settings = Settings(backend="local", home=tmp_path / "home")
    ctx = build_trainer_context(settings, trainers={"image": FakeTrainer(), "sentiment": FakeTrainer()})
    services = build_services(settings, launcher=lambda job: None)
    assert dispatch(Command("upload", TENANT, "u1", ("colours",), Attachment("c.zip", _zip())), services).ok
    client = create_app(ctx, token="", drainer=CountingDrainer()).test_client()
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}, bearer("x")):
        for path in ROUTES:
            response = client.post(path, json={"tenant": TENANT, "name": "colours"}, headers=headers)
            assert response.status_code == 401, (path, headers)
    assert ctx.jobs.queued() == [] and client.get("/health").status_code == 200


def test_create_app_requires_the_token_argument(tmp_path: Path) -> None:
    ctx = build_trainer_context(Settings(backend="local", home=tmp_path / "home"))
    with pytest.raises(TypeError):
        create_app(ctx)  # type: ignore[call-arg]


def test_the_deployed_trainer_refuses_to_start_on_aws_without_a_token(tmp_path: Path) -> None:
    from platform_core.errors import ConfigError
    from trainer_ec2.app import build_app

    with pytest.raises(ConfigError) as caught:
        build_app(Settings(backend="aws", bucket="b", region="us-east-1", home=tmp_path / "home"))
    assert caught.value.setting == "MLBOT_TRAINER_TOKEN" and "MLBOT_TRAINER_TOKEN" in caught.value.user_message()


@pytest.mark.slow  # a fresh interpreter imports the module
def test_the_wsgi_module_refuses_to_start_on_aws_without_a_token(tmp_path: Path) -> None:
    """gunicorn's import of trainer_ec2.wsgi, in a fresh process: the start-up error names the setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBOT_")}
    env.update(MLBOT_BACKEND="aws", MLBOT_BUCKET="b", AWS_REGION="us-east-1", MLBOT_HOME=str(tmp_path / "home"),
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-c", "import trainer_ec2.wsgi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "ConfigError" in done.stderr and "MLBOT_TRAINER_TOKEN" in done.stderr


def test_a_local_trainer_with_a_token_serves(tmp_path: Path) -> None:
    from trainer_ec2.app import build_app

    app = build_app(Settings(backend="local", home=tmp_path / "home", trainer_token=TOKEN))
    client = app.test_client()
    assert client.get("/health").status_code == 200
    assert client.post("/train_image_classification", json={"tenant": TENANT, "name": "x"}).status_code == 401
    assert client.post("/train_image_classification", json={"tenant": TENANT, "name": "x"},
                       headers=bearer()).status_code == 404
