"""The trainer under its production WSGI server (gunicorn, as on EC2) and under `mlbot serve`, with its
routes behind the trainer token (401 without it) and /health open."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test starts the trainer as a server process
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(port: int, deadline_s: float = 60) -> dict:
    end = time.time() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.2)


def _run(cmd: list[str], home: Path, **env: str) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if k != "MLBOT_TRAINER_TOKEN"}, "MLBOT_HOME": str(home),
           "MLBOT_BACKEND": "local", "PYTHONUNBUFFERED": "1", **env}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    return out


def _post(port: int, path: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


FORGED = {"tenant": "console:someone", "name": "ghost", "job_id": "forged", "enqueued_at": 0,
          "reply_to": {"channel": "slack", "channel_id": "C-ATTACKER"}, "text": "hi"}
ROUTES = ["/train_image_classification", "/train_sentiment_analysis", "/predict_image_classification",
          "/predict_sentiment_analysis"]


def _check_the_token(port: int, token: str) -> None:
    for path in ROUTES:
        assert _post(port, path, FORGED)[0] == 401, path
        assert _post(port, path, FORGED, "wrong")[0] == 401, path
        status, body = _post(port, path, FORGED, token)
        assert status == 404 and body["error"] == "not_found", path  # authenticated: no such dataset


def test_gunicorn_serves_the_trainer_with_the_shipped_config(tmp_path: Path) -> None:
    port = _free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    token = "gunicorn-test-token-0123456789abcdef"
    proc = _run([str(gunicorn), "--config", "trainer_ec2/deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                 "trainer_ec2.wsgi:app"], tmp_path / "home", MLBOT_TRAINER_TOKEN=token)
    try:
        assert _health(port)["status"] == "ok"
        _check_the_token(port, token)
    finally:
        assert token not in _stop(proc)


def test_mlbot_serve_answers_health_and_keeps_the_trainer_routes_behind_its_token_file(tmp_path: Path) -> None:
    port = _free_port()
    home = tmp_path / "home"
    proc = _run([str(Path(sys.executable).with_name("mlbot")), "serve", "--port", str(port)], home)
    try:
        body = _health(port)
        assert body["state"] == "Free" and body["job"] is None
        path = home / "trainer.token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text()
        _check_the_token(port, token)
        assert _health(port)["job"] is None
    finally:
        out = _stop(proc)
    assert f"token in {path}" in out and token not in out
