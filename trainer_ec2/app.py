"""The trainer's HTTP face (DESIGN.md "Trainer HTTP"): thin Flask routes over the runner and predictor.

Training requests are validated, queued (idempotent by job id) and answered 202 at once; a background
thread drains the queue under the machine lock.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable

from flask import Flask, jsonify, request

from lambda_predict.handler import answer
from lambda_predict.predictor import Predictor
from platform_core.errors import DatasetNotFound, InvalidDatasetName, MlbotError
from platform_core.config import Settings
from platform_core.jobs import RECIPES, Job
from platform_core.records import normalise_name
from trainer_ec2.runner import TrainerContext, drain, enqueue

log = logging.getLogger(__name__)
ENDPOINT_KIND = {"train_image_classification": "image", "train_sentiment_analysis": "sentiment"}


class Drainer:
    """At most one background drain per process; a request while draining just marks more work."""

    def __init__(self, ctx: TrainerContext, run: Callable[[TrainerContext], int] = drain) -> None:
        self._ctx, self._run = ctx, run
        self._lock = threading.Lock()
        self._again = threading.Event()
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        with self._lock:
            self._again.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="trainer-drain", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._again.is_set():
                    self._thread = None
                    return
                self._again.clear()
            try:
                self._run(self._ctx)
            except Exception:
                log.exception("drain failed")

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def create_app(ctx: TrainerContext, *, drainer: Drainer | None = None) -> Flask:
    """The Flask app over one trainer context."""
    app = Flask("mlbot-trainer")
    drainer = drainer or Drainer(ctx)
    predictor = Predictor(blobs=ctx.blobs, records=ctx.records)
    app.extensions["mlbot_drainer"] = drainer

    @app.get("/health")
    def health():
        status = ctx.lock.get(ctx.machine)
        return jsonify({"status": "ok", "machine": ctx.machine, "state": status.State if status else "Free",
                        "job": status.owner if status else None, "queued": len(ctx.jobs.queued())})

    @app.post("/train_image_classification")
    @app.post("/train_sentiment_analysis")
    def train():
        kind = ENDPOINT_KIND[request.path.strip("/")]
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "bad_request", "send a JSON object with tenant and name")
        try:
            job = _job_from(body, kind, ctx)
        except MlbotError as exc:
            return _error(404 if isinstance(exc, DatasetNotFound) else 400, exc.code, exc.user_message())
        stored = enqueue(ctx, job)
        drainer.kick()
        queued = [j.job_id for j in ctx.jobs.queued()]
        position = queued.index(stored.job_id) + 1 if stored.job_id in queued else 0
        return jsonify({"job_id": stored.job_id, "state": stored.state, "position": position}), 202

    @app.post("/predict_image_classification")
    @app.post("/predict_sentiment_analysis")
    def predict():
        """The inference Lambda's handler function, over HTTP: {"tenant", "name", "image" (base64) | "text"}."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body.get("tenant") or not body.get("name"):
            return _error(400, "bad_request", "send a JSON object with tenant, name and image (base64) or text")
        event = {"tenant": body["tenant"], "dataset": body["name"], "image_base64": body.get("image"),
                 "text": body.get("text")}
        reply = answer({k: v for k, v in event.items() if v is not None}, predictor, ctx.blobs)
        if reply["ok"]:
            return jsonify({k: v for k, v in reply.items() if k != "ok"})
        error = reply["error"]
        status = {"not_found": 404, "internal": 500}.get(error["code"], 400)
        return _error(status, error["code"], error["message"])

    return app


def start_idle_stopper(settings: Settings, ctx: TrainerContext, drainer: Drainer, *,
                       every_s: float = 60.0) -> threading.Thread | None:
    """On AWS, a daemon thread that stops this instance once idle for settings.idle_stop_s."""
    if settings.backend != "aws" or settings.idle_stop_s <= 0:
        return None
    from platform_core.adapters.aws import make_boto3_client
    from platform_core.adapters.aws_ec2 import IdleStopper

    stopper = IdleStopper(instance_id=ctx.machine, idle_s=settings.idle_stop_s,
                          busy=lambda: drainer.busy() or bool(ctx.jobs.queued()),
                          client=make_boto3_client("ec2", settings))

    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                stopper.check()
            except Exception:  # an API hiccup: look again next minute
                log.exception("idle check failed")
    thread = threading.Thread(target=watch, name="idle-stopper", daemon=True)
    thread.start()
    return thread


def _job_from(body: dict[str, Any], kind: str, ctx: TrainerContext) -> Job:
    """A job for the request; the dataset record decides the path and version, never the caller."""
    tenant, raw_name = body.get("tenant"), body.get("name")
    if not isinstance(tenant, str) or not isinstance(raw_name, str):
        raise InvalidDatasetName(str(raw_name))
    name = normalise_name(raw_name)
    record = ctx.records.get(tenant, name)
    if record is None:
        raise DatasetNotFound(name)
    if record.kind != kind:
        raise _WrongKind(name, record.kind)
    recipe = str(body.get("recipe") or RECIPES[kind][0]).lower()
    if recipe not in RECIPES[kind]:
        raise _WrongKind(name, f"{kind} (recipes: {', '.join(RECIPES[kind])})")
    job_id = str(body.get("job_id") or uuid.uuid4().hex[:12])
    return Job(job_id=job_id, tenant=tenant, name=name, kind=kind, recipe=recipe,
               dataset_path=record.dataset_path, dataset_version=record.dataset_version,
               requested_by=str(body.get("requested_by") or "api"), reply_to=dict(body.get("reply_to") or {}),
               enqueued_at=float(body.get("enqueued_at") or time.time()))


class _WrongKind(MlbotError):
    code = "wrong_kind"

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        super().__init__(name)

    def user_message(self) -> str:
        return f"'{self.name}' is a {self.kind} dataset; use the matching endpoint or recipe."


def _error(status: int, code: str, message: str):
    return jsonify({"error": code, "message": message}), status
