"""The trainer's HTTP API: thin Flask routes over the runner and predictor (`GET /health`, the `/train_*` and
`/predict_*` routes).

Every route but `GET /health` requires `Authorization: Bearer <token>`, the shared secret of the chat
functions and the trainer (MLBOT_TRAINER_TOKEN), compared in constant time before the body is read; without
it the answer is 401 and nothing is read or queued. An app made with an empty token refuses everything.

A training request naming a job already queued only wakes the worker (the stored record, not the body, says
who is told and where the job stands in the queue); any other training request is validated and queued as a
new job with its ticket (platform_core.training). Both are answered 202 at once. Locally a background thread
drains the queue when woken; the deployed trainer runs a Worker that long-polls its pool's queue for ever,
and `GET /health` answers 503 once that worker has stopped (the launch lifecycle hook waits for a 200).
"""
from __future__ import annotations

import hmac
import logging
import re
import threading
from typing import Any, Callable

from flask import Flask, jsonify, request

from lambda_predict.handler import answer
from lambda_predict.predictor import Predictor
from platform_core.errors import (BadRequest, ConfigError, DatasetNotFound, InvalidDatasetName, MlbotError, WrongKind)
from platform_core.backend import backend_for
from platform_core.config import Settings
from platform_core.jobs import RECIPES, TRAIN_ROUTES, Job, ReplyTo
from platform_core.training import queue_position, submit_training
from platform_core.records import normalise_name
from trainer_ec2.runner import TrainerContext, Worker, drain
from trainer_ec2.wiring import build_trainer_context

log = logging.getLogger(__name__)
KIND_OF_ROUTE = {route: kind for kind, route in TRAIN_ROUTES.items()}
OPEN_ENDPOINTS = frozenset({"health"})  # every other route needs the token
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


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


def create_app(ctx: TrainerContext, *, token: str, drainer: Drainer | None = None,
               worker: Worker | None = None) -> Flask:
    """The Flask app over one trainer context; ``token`` is the shared secret every route but /health needs.

    With a ``worker`` (the deployed trainer) the worker takes queued jobs and /health reports it; without
    one, the ``drainer`` drains the queue whenever a training request comes."""
    app = Flask("mlbot-trainer")
    drainer = drainer or Drainer(ctx)
    predictor = Predictor(blobs=ctx.blobs, records=ctx.records)
    app.extensions["mlbot_drainer"] = drainer
    app.extensions["mlbot_worker"] = worker
    expected = token.encode("utf-8")
    if not expected:
        log.warning("the trainer has no token (MLBOT_TRAINER_TOKEN): every route but /health answers 401")

    @app.before_request
    def authenticate():
        """Before any route reads the body: the bearer token, or 401 (fail closed without a token)."""
        if request.endpoint in OPEN_ENDPOINTS and request.method in ("GET", "HEAD"):
            return None
        if not _authorised(request.headers.get("Authorization", ""), expected):
            log.warning("refused %s %s: no valid trainer token", request.method, request.path)  # never the header
            response = _error(401, "unauthorized", "send the trainer token as 'Authorization: Bearer <token>'")
            response[0].headers["WWW-Authenticate"] = 'Bearer realm="mlbot-trainer"'
            return response
        return None

    @app.get("/health")
    def health():
        status = ctx.lock.get(ctx.machine)
        body = {"status": "ok", "machine": ctx.machine, "pool": ctx.pool,
                "state": status.State if status else "Free", "job": status.owner if status else None}
        if worker is not None and not worker.alive():
            return jsonify({**body, "status": "worker stopped"}), 503
        return jsonify(body)

    @app.post(TRAIN_ROUTES["image"])
    @app.post(TRAIN_ROUTES["sentiment"])
    def train():
        kind = KIND_OF_ROUTE[request.path]
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "bad_request", "send a JSON object with tenant and name (or a queued job_id)")
        job_id = body.get("job_id")
        if job_id is not None and (not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id)):
            return _error(400, "bad_request", "job_id must be up to 64 letters, digits and . _ : -")
        stored = ctx.jobs.get(job_id) if job_id else None
        if stored is None:  # an API caller's new job, with its ticket
            try:
                stored = _submit(body, kind, ctx, job_id)
            except MlbotError as exc:
                return _error(404 if isinstance(exc, DatasetNotFound) else 400, exc.code, exc.user_message())
        elif stored.state == "queued":  # a nudge: one more ticket (a spare one costs a trainer nothing)
            ctx.queue.send(stored)
        if worker is None:
            drainer.kick()
        return jsonify({"job_id": stored.job_id, "state": stored.state,
                        "position": queue_position(ctx.jobs, stored)}), 202

    @app.post("/predict_image_classification")
    @app.post("/predict_sentiment_analysis")
    def predict():
        """The inference Lambda's handler function, over HTTP: {"tenant", "name", "image" (base64) | "text"}.

        The caller holds the token, so it is trusted with the tenant it names."""
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


def _authorised(header: str, expected: bytes) -> bool:
    """`Bearer <token>` matching ``expected`` (compared in constant time); never true for an empty token."""
    scheme, _, presented = header.partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode("utf-8"), expected)


def build_app(settings: Settings) -> Flask:
    """The deployed trainer (trainer_ec2.wsgi): the app for ``settings`` and, on AWS, its Worker long-polling
    the pool's queue; locally, its drainer kicked (jobs queued while nothing ran start at once).

    On the AWS backend a missing token is a start-up error (ConfigError naming MLBOT_TRAINER_TOKEN), raised
    before anything is built; on the local backend an app without a token serves /health and refuses the
    rest."""
    backend = backend_for(settings)
    if backend.name == "aws" and not settings.trainer_token:
        raise ConfigError("MLBOT_TRAINER_TOKEN")
    ctx = build_trainer_context(settings, backend=backend)
    if backend.name == "aws":
        return create_app(ctx, token=settings.trainer_token, worker=Worker(ctx).start())
    app = create_app(ctx, token=settings.trainer_token)
    app.extensions["mlbot_drainer"].kick()
    return app


def _submit(body: dict[str, Any], kind: str, ctx: TrainerContext, job_id: str | None) -> Job:
    """An authenticated caller's training request, through the one submit path (platform_core.training):
    the dataset record decides the path and version, and the queue stamps the enqueue time (never the body)."""
    tenant, raw_name = body.get("tenant"), body.get("name")
    if not isinstance(tenant, str) or not isinstance(raw_name, str):
        raise InvalidDatasetName(str(raw_name))
    name = normalise_name(raw_name)
    record = ctx.records.get(tenant, name)
    if record is None:
        raise DatasetNotFound(name)
    if record.kind != kind:
        raise WrongKind(name, record.kind)
    recipe = str(body.get("recipe") or RECIPES[kind][0]).lower()
    if recipe not in RECIPES[kind]:
        raise WrongKind(name, f"{kind} (recipes: {', '.join(RECIPES[kind])})")
    raw = body.get("reply_to")
    if raw is not None and (not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values())):
        raise BadRequest("reply_to must be a JSON object of strings")
    try:
        reply_to = ReplyTo.from_dict(raw)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    requested_by = body.get("requested_by") or "api"
    if not isinstance(requested_by, str):
        raise BadRequest("requested_by must be a string")
    return submit_training(ctx.jobs, {ctx.pool: ctx.queue}, ctx.records, record, recipe=recipe,
                           requested_by=requested_by, reply_to=reply_to, job_id=job_id).job


def _error(status: int, code: str, message: str):
    return jsonify({"error": code, "message": message}), status
