"""The REST API over HTTP, as `mlbot serve` answers it (its WSGI app): a key made at the console uploads,
trains, polls, predicts and downloads the export; revoked keys, other tenants and bad uploads are refused
with the right status and a JSON error."""
from __future__ import annotations

import ast
import base64
import io
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from werkzeug.test import Client

from bot.console.serve import combined_app, webhook_routes
from bot.api.routes import RestApi
from bot.api.openapi import ORIGINAL, document
from bot.wiring import build_services
from lambda_predict.handler import InProcessPredictions
from lambda_predict.predictor import Predictor
from platform_core.apikeys import create_key, revoke_key
from platform_core.backend import backend_for
from platform_core.config import Settings
from tests.fakes import FakeTrainer, png
from tests.integration.test_export import TextTrainer
from tests.integration.test_trainer_runner import _zip
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

REPO = Path(__file__).resolve().parents[2]
TENANT = "console:ada"


class Api:
    def __init__(self, home: Path, per_minute: int = 120, clock=None) -> None:
        settings = Settings(backend="local", home=home, api_rate_per_minute=per_minute)
        trainers = {"image": FakeTrainer(["red", "green", "blue"]), "sentiment": TextTrainer()}
        self.ctx = build_trainer_context(settings, trainers=trainers)
        self.services = build_services(settings, launcher=lambda job: None)
        self.services.predictor = InProcessPredictions(Predictor(blobs=self.ctx.blobs, records=self.ctx.records),
                                                       self.ctx.blobs)
        routes = webhook_routes(settings, self.services)
        if clock is not None:  # the same API, on a clock the test holds (a minute that does not roll over)
            routes["/v1/"] = RestApi(self.services, limiter=backend_for(settings).rate_limiter,
                                     per_minute=per_minute, clock=clock).handle
        self.client = Client(combined_app(routes, _no_trainer))
        _, self.key = create_key(self.services.blobs, TENANT, "ada")

    def call(self, method: str, path: str, key: str | None = "mine", **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {self.key if key == 'mine' else key}"
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        conforms(method, path.split("?")[0], response)  # every response the tests see, against the document
        return response


DOCUMENT = document()


def conforms(method: str, path: str, response) -> None:
    """The response is one the OpenAPI document describes: its status (or the default error) and its schema."""
    template = next((t for t in DOCUMENT["paths"]
                     if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", t), path)), None)
    operation = DOCUMENT["paths"][template].get(method.lower()) if template else None
    responses = operation["responses"] if operation else {"default": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}}
    described = responses.get(str(response.status_code)) or responses["default"]
    if "content" not in described:  # a 204
        assert response.status_code == 204 and response.get_data() == b"", (method, path, response.status_code)
        return
    kind = response.headers["Content-Type"].split(";")[0]
    assert kind in described["content"], (method, path, response.status_code, kind)
    if kind == "application/json":
        schema = {**described["content"][kind]["schema"], "components": DOCUMENT["components"]}
        OAS31Validator(schema).validate(response.get_json())


def _no_trainer(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not here"]


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(tmp_path / "home")


def test_a_key_uploads_trains_polls_predicts_and_downloads_the_model(api: Api) -> None:
    stored = api.call("POST", "/v1/datasets/colours?description=swatches", data=_zip(),
                      headers={"Content-Type": "application/zip"})
    assert stored.status_code == 201, stored.get_json()
    assert stored.get_json()["validation"]["classes"] == {"blue": 10, "green": 10, "red": 10}
    csv = (REPO / "examples" / "movie_reviews.csv").read_bytes()
    assert api.call("POST", "/v1/datasets/reviews", data=csv, headers={"Content-Type": "text/csv"}).status_code == 201
    listed = api.call("GET", "/v1/datasets").get_json()["datasets"]
    assert [d["name"] for d in listed] == ["colours", "reviews"] and "dataset_path" not in listed[0]
    assert api.call("GET", "/v1/datasets/colours").get_json()["description"] == "swatches"
    for name in ("colours", "reviews"):
        queued = api.call("POST", f"/v1/datasets/{name}/train")
        assert queued.status_code == 202 and queued.get_json()["position"] >= 1
        job_id = queued.get_json()["job_id"]
        assert api.call("GET", f"/v1/jobs/{job_id}").get_json()["state"] == "queued"
        assert drain(api.ctx) == 1
        done = api.call("GET", f"/v1/jobs/{job_id}").get_json()
        assert done["state"] == "succeeded" and done["model_version"] == 1
    red = png((250, 5, 5))
    by_json = api.call("POST", "/v1/datasets/colours/predict", json={"image": base64.b64encode(red).decode()})
    by_bytes = api.call("POST", "/v1/datasets/colours/predict", data=red, headers={"Content-Type": "image/png"})
    assert by_json.status_code == by_bytes.status_code == 200
    answer = by_json.get_json()
    assert answer["label"] == "red" and answer["model_version"] == 1 and answer["top"][0][0] == "red"
    assert by_bytes.get_json()["confidence"] == answer["confidence"]
    text = api.call("POST", "/v1/datasets/reviews/predict", json={"text": "a great movie!"}).get_json()
    assert text["label"] == "pos"
    model = api.call("GET", "/v1/datasets/colours/model")
    assert model.status_code == 200 and model.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(model.get_data())) as zf:
        assert {"model.onnx", "mlbot_model.py", "README.md"} <= set(zf.namelist())


def test_no_key_a_bad_key_and_a_revoked_key_are_refused(api: Api) -> None:
    missing = api.call("GET", "/v1/datasets", key=None)
    assert missing.status_code == 401 and missing.get_json()["error"]["code"] == "unauthorized"
    assert api.call("GET", "/v1/datasets", key="mlbot_0123456789abcdef_" + "A" * 43).status_code == 401
    record, key = create_key(api.services.blobs, TENANT, "ada")
    assert api.call("GET", "/v1/datasets", key=key).status_code == 200
    revoke_key(api.services.blobs, TENANT, record.key_id)
    revoked = api.call("GET", "/v1/datasets", key=key)
    assert revoked.status_code == 403 and "revoked" in revoked.get_json()["error"]["message"]


def test_another_tenants_key_cannot_see_train_predict_or_export_the_datasets(api: Api) -> None:
    assert api.call("POST", "/v1/datasets/colours", data=_zip(), headers={"Content-Type": "application/zip"}) \
        .status_code == 201
    _, theirs = create_key(api.services.blobs, "slack:TOTHER", "bob")
    assert api.call("GET", "/v1/datasets", key=theirs).get_json() == {"datasets": []}
    for method, path, kwargs in (("GET", "/v1/datasets/colours", {}), ("POST", "/v1/datasets/colours/train", {}),
                                 ("POST", "/v1/datasets/colours/predict", {"json": {"text": "x"}}),
                                 ("GET", "/v1/datasets/colours/model", {})):
        refused = api.call(method, path, key=theirs, **kwargs)
        nobody = api.call(method, path.replace("colours", "nosuchname"), key=theirs, **kwargs)
        assert refused.status_code == nobody.status_code == 404  # the same answer: names do not leak
        assert refused.get_json()["error"]["code"] == "not_found"


def test_a_bad_upload_gets_400_with_every_problem(api: Api) -> None:
    broken = (REPO / "examples" / "broken.zip").read_bytes()
    refused = api.call("POST", "/v1/datasets/shoes", data=broken, headers={"Content-Type": "application/zip"})
    body = refused.get_json()["error"]
    assert refused.status_code == 400 and body["code"] == "rejected"
    assert len(body["validation"]["errors"]) == 4 and body["validation"]["problems"]
    wrong_type = api.call("POST", "/v1/datasets/shoes", data=broken, headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415


@pytest.mark.parametrize("method, path, status, code", [("GET", "/v1/nothing", 404, "not_found"),
                                                       ("DELETE", "/v1/datasets", 405, "method_not_allowed"),
                                                       ("GET", "/v1/jobs/nope", 404, "not_found"),
                                                       ("POST", "/v1/datasets/x/predict", 400, "bad_request")])
def test_unknown_routes_and_bad_requests_get_a_json_error(api: Api, method, path, status, code) -> None:
    answer = api.call(method, path, data=b"not json" if "predict" in path else None,
                      headers={"Content-Type": "application/json"})
    assert answer.status_code == status and answer.get_json()["error"]["code"] == code


def test_the_openapi_document_is_valid_3_1_needs_no_key_and_names_the_six_original_operations(api: Api) -> None:
    served = api.call("GET", "/v1/openapi.json", key=None)
    assert served.status_code == 200 and served.get_json() == DOCUMENT
    validate(DOCUMENT)  # OpenAPI 3.1, as a generator reads it
    assert DOCUMENT["openapi"] == "3.1.0"
    originals = [op for path in DOCUMENT["paths"].values() for op in path.values() if "x-original-operation" in op]
    assert sum(len(op["x-original-operation"]) for op in originals) == 6 == sum(map(len, ORIGINAL.values()))
    routes = {(m.lower(), p.pattern) for m, p, _ in RestApi(api.services, limiter=None, per_minute=1).routes}
    described = {(m, "^" + re.sub(r"\{([^/]+)\}", r"(?P<\1>[^/]+)", t) + "$")
                 for t, ops in DOCUMENT["paths"].items() for m in ops if t != "/v1/openapi.json"}
    assert routes == described  # every route is described, and nothing else


def test_a_key_over_its_rate_limit_gets_429_with_retry_after_and_another_key_does_not(tmp_path: Path) -> None:
    api = Api(tmp_path / "home", per_minute=3, clock=lambda: 60 * 28_333_334 + 30.0)
    answers = [api.call("GET", "/v1/datasets") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.get_json()["error"]["code"] == "rate_limited" and limited.headers["Retry-After"] == "30"
    _, other = create_key(api.services.blobs, TENANT, "ada")
    assert api.call("GET", "/v1/datasets", key=other).status_code == 200  # the limit is per key


def _post_form(api: Api, form: dict, data: bytes, **overrides: str):
    """What a client does with an upload form: every field, then the file, to the form's URL."""
    fields = {**form["fields"], **overrides}
    path = form["url"].split("://", 1)[1].split("/", 1)[1]
    return api.call("POST", "/" + path, key=None, data={**fields, "file": (io.BytesIO(data), "any-name")},
                    content_type="multipart/form-data")


def test_a_file_over_the_request_limit_goes_through_an_upload_form_and_is_validated_when_it_lands(api: Api) -> None:
    csv = (REPO / "examples" / "movie_reviews.csv").read_bytes()
    asked = api.call("POST", "/v1/datasets/Reviews/upload-url", json={"content_type": "text/csv",
                                                                      "description": "long reviews"})
    assert asked.status_code == 201, asked.get_json()
    form = asked.get_json()
    assert form["url"] == "http://localhost/v1/uploads" and form["method"] == "POST"  # serve's own target
    assert form["max_bytes"] == api.services.limits.max_csv_bytes
    status = api.call("GET", form["status_url"]).get_json()
    assert status["state"] == "waiting" and status["dataset"] == "reviews"
    assert _post_form(api, form, csv, token="not-the-token").status_code == 403
    assert api.services.records.get(TENANT, "reviews") is None
    assert _post_form(api, form, csv).status_code == 204
    status = api.call("GET", form["status_url"]).get_json()
    assert status["state"] == "stored" and status["result"]["dataset"]["description"] == "long reviews"
    assert status["result"]["validation"]["classes"] == {"negative": 150, "positive": 150}
    assert api.services.records.get(TENANT, "reviews").kind == "sentiment"
    assert _post_form(api, form, csv).status_code == 403  # a form takes one file
    assert api.services.blobs.list("api-uploads/incoming/") == []  # the file is gone once read

    broken = api.call("POST", "/v1/datasets/shoes/upload-url?content_type=application/zip").get_json()
    assert _post_form(api, broken, (REPO / "examples" / "broken.zip").read_bytes()).status_code == 204
    refused = api.call("GET", broken["status_url"]).get_json()
    assert refused["state"] == "rejected" and len(refused["result"]["validation"]["errors"]) == 4
    assert api.services.records.get(TENANT, "shoes") is None  # nothing half-stored


def test_upload_forms_are_bounded_private_and_expire(tmp_path: Path) -> None:
    now = [1_000_000.0]
    api = Api(tmp_path / "home", clock=lambda: now[0])
    api.services.limits = replace(api.services.limits, max_csv_bytes=100)
    form = api.call("POST", "/v1/datasets/tiny/upload-url", json={"content_type": "text/csv"}).get_json()
    assert form["max_bytes"] == 100
    assert _post_form(api, form, b"x" * 101).status_code == 413
    _, theirs = create_key(api.services.blobs, "slack:TOTHER", "bob")
    assert api.call("GET", form["status_url"], key=theirs).status_code == 404  # not theirs to see
    assert api.call("POST", "/v1/datasets/tiny/upload-url", json={"content_type": "image/png"}).status_code == 400
    assert api.call("POST", "/v1/datasets/no%20good/upload-url",
                    json={"content_type": "text/csv"}).get_json()["error"]["code"] == "invalid_name"
    now[0] += 3601
    assert api.call("GET", form["status_url"]).get_json()["state"] == "expired"
    assert _post_form(api, form, b"text,label\n").status_code == 403


def test_the_readmes_python_example_runs_against_mlbot_serve(tmp_path: Path, monkeypatch, capsys) -> None:
    """The README's Python block, as written, over real HTTP against serve's app (training in a thread)."""
    from werkzeug.serving import make_server

    from platform_core.adapters.launchers import ThreadLauncher
    from tests.serving import serve_in_thread

    block = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    settings = Settings(backend="local", home=tmp_path / "home")
    ctx = build_trainer_context(settings, trainers={"image": FakeTrainer(["red", "green", "blue"]),
                                                    "sentiment": TextTrainer()})
    services = build_services(settings, launcher=ThreadLauncher(lambda: drain(ctx)))
    services.predictor = InProcessPredictions(Predictor(blobs=ctx.blobs, records=ctx.records), ctx.blobs)
    server = make_server("127.0.0.1", 0, combined_app(webhook_routes(settings, services), _no_trainer), threaded=True)
    serve_in_thread(server)
    try:
        _, key = create_key(services.blobs, TENANT, "ada")
        (tmp_path / "examples").symlink_to(REPO / "examples")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("MLBOT_API", f"http://127.0.0.1:{server.server_port}/v1")
        monkeypatch.setenv("MLBOT_KEY", key)
        exec(compile(block, "README.md", "exec"), {"__name__": "__main__"})  # noqa: S102 - our own README
    finally:
        server.shutdown()
    printed = capsys.readouterr().out.splitlines()
    assert printed[:6] == ["{'bag': 30, 'sneaker': 30, 'trouser': 30, 'tshirt_top': 30}", "stored", "['fashion', 'reviews']",
                           "Training Not Started", "fashion succeeded 1", "reviews succeeded 1"], printed
    by_bytes, by_base64 = (ast.literal_eval(line) for line in printed[6:8])
    assert by_bytes.pop("prediction_id") != by_base64.pop("prediction_id")
    assert by_bytes == by_base64 and by_bytes["label"] in ("red", "green", "blue")  # one photo, bytes or base64
    assert printed[8] == "pos" and zipfile.is_zipfile(tmp_path / "fashion.zip")
    assert printed[9] == f"{len(DOCUMENT['paths'])} routes described"
