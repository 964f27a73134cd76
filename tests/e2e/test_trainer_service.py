"""The trainer under its production WSGI server (gunicorn, as on EC2) and under `mlbot serve`."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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


def _run(cmd: list[str], home: Path) -> subprocess.Popen:
    env = dict(os.environ, MLBOT_HOME=str(home), MLBOT_BACKEND="local")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_gunicorn_serves_the_trainer_with_the_shipped_config(tmp_path: Path) -> None:
    port = _free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = _run([str(gunicorn), "--config", "trainer_ec2/deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                 "trainer_ec2.wsgi:app"], tmp_path / "home")
    try:
        assert _health(port)["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_mlbot_serve_answers_health(tmp_path: Path) -> None:
    port = _free_port()
    proc = _run([str(Path(sys.executable).with_name("mlbot")), "serve", "--port", str(port)], tmp_path / "home")
    try:
        body = _health(port)
        assert body["state"] == "Free" and body["queued"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
