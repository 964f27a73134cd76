"""The REST API on the AWS deployment, with AWS played by the moto server over HTTP.

The API function's Lambda entry (bot.api.lambda_entry.handler) answers API Gateway events over the moto
stores; a key made with `mlbot apikey create` on that backend uploads the example zip in the request and the
example CSV through an upload form (a real presigned S3 POST to the moto server, then the S3 "Object Created"
event EventBridge delivers, twice), trains both on trainers the Auto Scaling group launches (the real trainer,
as in test_aws_flow), polls the jobs, predicts, downloads the export and reproduces the prediction from it.
Another tenant's key, a revoked key, a bad upload and a key over its rate limit are refused.
"""
from __future__ import annotations

import base64
import importlib.util
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
import requests

from bot.console import cli
from bot.api import lambda_entry
from bot.api.routes import RestApi
from bot.api.lambda_entry import build_api
from bot.wiring import build_services
from platform_core.adapters.aws_predict import LambdaPredictions
from platform_core.apikeys import create_key, revoke_key
from platform_core.backend import backend_for
from tests.e2e.test_aws_flow import InvokePredict, cloud  # noqa: F401 - the moto deployment fixture
from tests.integration.test_slack import LambdaContext
from tools import realdata

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TENANT = "console:ada"


class Gateway:
    """API Gateway's part: a request becomes the HTTP API (payload 2.0) event the function receives."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, method: str, path: str, body: bytes | dict | None = None, *, key: str | None = "mine",
                 content_type: str = "application/json", query: dict | None = None) -> tuple[int, dict | bytes]:
        headers = {"content-type": content_type, "host": "abc123.execute-api.us-east-1.amazonaws.com"}
        if key is not None:
            headers["authorization"] = f"Bearer {self.key if key == 'mine' else key}"
        raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        event = {"version": "2.0", "routeKey": "ANY /v1/{proxy+}", "rawPath": path, "headers": headers,
                 "queryStringParameters": query, "requestContext": {"http": {"method": method, "path": path}},
                 "body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
        answer = lambda_entry.handler(event, LambdaContext())
        data = base64.b64decode(answer["body"]) if answer.get("isBase64Encoded") else answer["body"].encode()
        is_json = answer["headers"].get("content-type") == "application/json"
        return answer["statusCode"], json.loads(data) if is_json else data


def landed(bucket: str, key: str, size: int) -> dict:
    """S3's "Object Created" event as EventBridge delivers it to the upload function."""
    return {"version": "0", "id": "c9888434-815d-c6f4-9fc2-4dd7bdeccaaf", "detail-type": "Object Created",
            "source": "aws.s3", "account": "123456789012", "region": "us-east-1", "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": size},
                       "reason": "PostObject"}}


def test_a_console_key_drives_the_whole_flow_through_the_api_function_on_the_aws_deployment(
        cloud, fashion_mnist, monkeypatch, capsys, tmp_path: Path) -> None:  # noqa: F811
    settings, clients, _, _, engine = cloud
    services = build_services(settings)  # the deployed wiring over moto
    services.predictor = LambdaPredictions(function="mlbot-predict", blobs=services.blobs, client=InvokePredict())
    monkeypatch.setattr(lambda_entry, "_api", build_api(settings, services))
    monkeypatch.setenv("MLBOT_USER", "ada")
    assert cli.main(["apikey", "create", "--label", "ci", "--json"]) == 0  # at the console, on the AWS backend
    made = json.loads(capsys.readouterr().out)
    api = Gateway(made["key"])

    archive = realdata.build_image_zip(["trouser", "bag"], 10)
    status, stored = api("POST", "/v1/datasets/clothes", archive, content_type="application/zip")
    assert status == 201 and stored["validation"]["classes"] == {"bag": 10, "trouser": 10}, stored

    csv = (REPO / "examples" / "movie_reviews.csv").read_bytes()
    status, form = api("POST", "/v1/datasets/reviews/upload-url", {"content_type": "text/csv"})
    assert status == 201 and form["url"].startswith(settings.aws_endpoint_url), form  # S3 itself takes the file
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))  # what S3 checks before it stores anything
    assert ["content-length-range", 1, services.limits.max_csv_bytes] in policy["conditions"]
    assert {"Content-Type": "text/csv"} in policy["conditions"]
    posted = requests.post(form["url"], data=form["fields"], files={"file": ("reviews.csv", csv)}, timeout=30)
    assert posted.status_code in (200, 201, 204), posted.text
    assert api("GET", form["status_url"])[1]["state"] == "waiting"
    event = landed(settings.bucket, form["fields"]["key"], len(csv))
    assert lambda_entry.handler(event, LambdaContext())["upload"] == form["upload_id"]
    assert lambda_entry.handler(event, LambdaContext())["upload"] is None  # EventBridge delivers it again: a no-op
    status, upload = api("GET", form["status_url"])
    assert upload["state"] == "stored" and upload["result"]["validation"]["classes"]["positive"] == 150, upload
    assert services.blobs.list("api-uploads/incoming/") == []

    jobs = {}
    for name in ("clothes", "reviews"):
        status, queued = api("POST", f"/v1/datasets/{name}/train")
        assert status == 202, queued
        jobs[name] = queued["job_id"]
    deadline, done = time.monotonic() + 420, {}
    while len(done) < 2 and time.monotonic() < deadline:
        for name, job_id in jobs.items():
            job = api("GET", f"/v1/jobs/{job_id}")[1]
            if job["state"] in ("succeeded", "failed"):
                done[name] = job
        time.sleep(1)
    assert {n: j["state"] for n, j in done.items()} == {"clothes": "succeeded", "reviews": "succeeded"}, done
    assert len(engine.booted) >= 1  # the group launched trainers for them

    photo = io.BytesIO()
    from PIL import Image

    Image.fromarray(realdata.sample_images(["trouser"], 1, seed=7)["trouser"][0]).resize((96, 96)).save(photo, "PNG")
    status, by_bytes = api("POST", "/v1/datasets/clothes/predict", photo.getvalue(), content_type="image/png")
    assert status == 200 and by_bytes["model_version"] == 1, by_bytes
    status, by_text = api("POST", "/v1/datasets/reviews/predict", {"text": "a gorgeous, moving film"})
    assert status == 200 and by_text["label"] in ("positive", "negative"), by_text
    for name, given, answer in (("clothes", {"image": photo.getvalue()}, by_bytes),
                                ("reviews", {"text": "a gorgeous, moving film"}, by_text)):
        status, exported = api("GET", f"/v1/datasets/{name}/model")
        assert status == 200 and zipfile.is_zipfile(io.BytesIO(exported))
        folder = tmp_path / name
        zipfile.ZipFile(io.BytesIO(exported)).extractall(folder)
        spec = importlib.util.spec_from_file_location(f"exported_{name}", folder / "mlbot_model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        mine = module.Model(folder).predict(**given)  # the export alone gives the API's answer
        assert mine["label"] == answer["label"] and abs(mine["confidence"] - answer["confidence"]) < 1e-5

    _, theirs = create_key(services.blobs, "slack:TOTHER", "bob")
    assert api("GET", "/v1/datasets", key=theirs) == (200, {"datasets": []})
    for method, path, body in (("GET", "/v1/datasets/clothes", None), ("POST", "/v1/datasets/clothes/train", None),
                               ("POST", "/v1/datasets/clothes/predict", {"text": "x"}),
                               ("GET", "/v1/datasets/clothes/model", None), ("GET", form["status_url"], None),
                               ("GET", f"/v1/jobs/{jobs['clothes']}", None)):
        status, refused = api(method, path, body, key=theirs)
        assert status == 404 and refused["error"]["code"] == "not_found", (path, refused)

    status, rejected = api("POST", "/v1/datasets/shoes", (REPO / "examples" / "broken.zip").read_bytes(),
                           content_type="application/zip")
    assert status == 400 and len(rejected["error"]["validation"]["errors"]) == 4
    assert services.records.get(TENANT, "shoes") is None

    spare, spare_key = create_key(services.blobs, TENANT, "ada")
    assert api("GET", "/v1/datasets", key=spare_key)[0] == 200
    revoke_key(services.blobs, TENANT, spare.key_id)
    assert api("GET", "/v1/datasets", key=spare_key)[0] == 403
    assert api("GET", "/v1/datasets", key=None)[0] == 401

    limiter = backend_for(settings).rate_limiter  # fixed windows in the Idempotency table (moto's DynamoDB)
    minute = (time.time() // 60) * 60 + 30  # one minute that does not roll over during the test
    monkeypatch.setattr(lambda_entry, "_api", RestApi(services, limiter=limiter, per_minute=2, clock=lambda: minute))
    _, limited_key = create_key(services.blobs, TENANT, "ada")
    assert [api("GET", "/v1/datasets", key=limited_key)[0] for _ in range(3)] == [200, 200, 429]
