"""The REST API (`/v1/...`): what the chat does, from code, with an API key (platform_core.apikeys).

Framework-free like the webhooks: ``RestApi.handle`` takes an API Gateway HTTP API (payload 2.0) event and
returns its response, so `mlbot serve` and a Lambda answer alike. Every route but
``/v1/openapi.json`` (bot.api.openapi) wants ``Authorization: Bearer <key>``; a key acts for its tenant with the rights of the chat admin who made it.
The use cases are the chat's (handlers.chat.dispatch), so a REST upload is validated exactly as a chat
upload; their error codes become HTTP statuses here, the body always ``{"error": {"code", "message"}}``.
Each key may make MLBOT_API_RATE_PER_MINUTE requests a minute (RateLimiter); more get 429 and Retry-After.
Another tenant's dataset is simply not there: the same 404 as a name nobody used, so names do not leak.

    GET  /v1/datasets                      list                     (original: none)
    GET  /v1/datasets/{name}               one record
    POST /v1/datasets/{name}               upload: zip or CSV body  (original: upload image / sentiment data)
    POST /v1/datasets/{name}/train         202 job id and position  (original: train image / sentiment model)
    GET  /v1/jobs/{id}                     a job's state
    POST /v1/datasets/{name}/predict       {"text"}, {"image": b64} or image bytes  (original: predict x2)
    GET  /v1/datasets/{name}/model         the export zip (?version=N)
    POST /v1/datasets/{name}/upload-url    a form to post a file over 6 MB straight to storage
    GET  /v1/uploads/{id}                  that upload: waiting, stored or rejected
    POST /v1/uploads                       the form's target where storage has none (local; no key: its token)

``accept`` validates and stores a file that landed through such a form (the S3 event, bot.api.lambda_entry).
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from typing import Any, Callable

from email.parser import BytesParser
from email.policy import HTTP

from handlers.chat import dispatch
from handlers.commands import Attachment, Command, Reply
from handlers.services import Services
from platform_core import uploads
from platform_core.apikeys import ApiKey, authenticate, key_of
from platform_core.errors import ApiKeyRefused, MlbotError, UnknownApiKey
from platform_core.ports import RateLimiter
from platform_core.records import normalise_name

log = logging.getLogger(__name__)
MAX_BODY = 6 * 1024 * 1024  # API Gateway's payload limit for a Lambda (larger uploads: a presigned URL)
STATUS = {"not_found": 404, "unknown_version": 404, "usage": 400, "rejected": 400, "invalid_name": 400,
          "bad_input": 400, "bad_request": 400, "missing_file": 400, "file_refused": 413, "wrong_kind": 400,
          "not_allowed": 403, "unauthorized": 401, "busy": 409, "not_trained": 409, "exists": 409,
          "conflict": 409, "trainer_unavailable": 503, "storage": 503, "model_unavailable": 503}
UPLOAD_TYPES = {"application/zip": "upload.zip", "application/x-zip-compressed": "upload.zip",
                "text/csv": "upload.csv", "application/csv": "upload.csv"}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp")
Handler = Callable[["Request", ApiKey], dict]


class Request:
    """What a route reads of an API Gateway event."""

    def __init__(self, event: dict) -> None:
        http = (event.get("requestContext") or {}).get("http") or {}
        self.method = str(http.get("method") or event.get("httpMethod") or "GET").upper()
        self.path = str(event.get("rawPath") or http.get("path") or "/")
        self.headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        self.query = dict(event.get("queryStringParameters") or {})
        body = event.get("body") or ""
        self.body = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
        self.params: dict[str, str] = {}

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> dict:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            raise ApiError(400, "bad_request", "The body is not JSON.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "The body must be a JSON object.")
        return data


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class RestApi:
    def __init__(self, services: Services, *, limiter: RateLimiter, per_minute: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.services, self.limiter, self.per_minute, self.clock = services, limiter, per_minute, clock
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"^/v1/datasets$"), self.list_datasets),
            ("GET", re.compile(r"^/v1/datasets/(?P<name>[^/]+)$"), self.get_dataset),
            ("POST", re.compile(r"^/v1/datasets/(?P<name>[^/]+)$"), self.upload),
            ("POST", re.compile(r"^/v1/datasets/(?P<name>[^/]+)/train$"), self.train),
            ("GET", re.compile(r"^/v1/jobs/(?P<job_id>[^/]+)$"), self.get_job),
            ("POST", re.compile(r"^/v1/datasets/(?P<name>[^/]+)/predict$"), self.predict),
            ("GET", re.compile(r"^/v1/datasets/(?P<name>[^/]+)/model$"), self.model),
            ("POST", re.compile(r"^/v1/datasets/(?P<name>[^/]+)/upload-url$"), self.upload_url),
            ("GET", re.compile(r"^/v1/uploads/(?P<upload_id>[^/]+)$"), self.get_upload),
            ("POST", re.compile(r"^/v1/uploads$"), self.receive_form),
        ]

    # --- the entry ----------------------------------------------------------------------------------------

    def handle(self, event: dict, context: Any = None) -> dict:
        request = Request(event)
        try:
            if request.path == "/v1/openapi.json" and request.method == "GET":  # the one route without a key
                from bot.api.openapi import document

                return _json(200, document())
            route, allowed = self._route(request)
            if route == self.receive_form:  # the form's token is its key; the file may be over 6 MB
                return self.receive_form(request)
            key = authenticate(self.services.blobs, _bearer(request))
            wait = self.limiter.allow(f"api:{key.key_id}", self.per_minute, 60, self.clock())
            if wait:
                answer = _error(429, "rate_limited", f"This key made over {self.per_minute} requests this minute; "
                                f"try again in {math.ceil(wait)} s.")
                answer["headers"]["retry-after"] = str(math.ceil(wait))
                return answer
            if route is None:
                raise ApiError(405 if allowed else 404, "method_not_allowed" if allowed else "not_found",
                               f"{request.method} {request.path} is not a route of this API"
                               + (f" (it answers {', '.join(sorted(allowed))})" if allowed else "")
                               + ".")
            if len(request.body) > MAX_BODY:
                raise ApiError(413, "too_large", f"The body is over {MAX_BODY // (1024 * 1024)} MB.")
            return route(request, key)
        except ApiKeyRefused as exc:
            return _error(403 if exc.revoked else 401, "forbidden" if exc.revoked else "unauthorized",
                          exc.user_message())
        except _Rejected as exc:  # every problem, as the chat lists them
            return _error(400, "rejected", exc.message, validation=exc.validation)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message)
        except MlbotError as exc:
            return _error(STATUS.get(exc.code, 400), exc.code, exc.user_message())
        except Exception:  # a bug or an outage: logged with its trace, told plainly
            log.exception("REST %s %s failed", request.method, request.path)
            return _error(500, "internal", "Something went wrong on our side; nothing was changed. Try again.")

    def _route(self, request: Request) -> tuple[Callable[[Request, ApiKey], dict] | None, set[str]]:
        allowed = set()
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match:
                allowed.add(method)
                if method == request.method:
                    request.params = match.groupdict()
                    return handler, allowed
        return None, allowed

    # --- the routes ---------------------------------------------------------------------------------------

    def list_datasets(self, request: Request, key: ApiKey) -> dict:
        return _json(200, {"datasets": [_record(r) for r in self._run(key, "datasets").data.get("datasets", [])]})

    def get_dataset(self, request: Request, key: ApiKey) -> dict:
        return _json(200, _record(self._run(key, "status", request.params["name"]).data))

    def upload(self, request: Request, key: ApiKey) -> dict:
        filename = UPLOAD_TYPES.get(request.content_type)
        if filename is None:
            raise ApiError(415, "unsupported_media_type",
                           "Send the dataset as the body with Content-Type application/zip (images) or text/csv.")
        words = tuple(str(request.query.get("description", "")).split())
        reply = self._run(key, "upload", request.params["name"], *words,
                          attachment=Attachment(filename, request.body))
        return _json(201, {**reply.data, "dataset": _record(reply.data["dataset"])})

    def train(self, request: Request, key: ApiKey) -> dict:
        recipe = request.query.get("recipe")
        reply = self._run(key, "train", request.params["name"], *([recipe] if recipe else []))
        return _json(202, {k: reply.data[k] for k in ("job_id", "position", "joined", "name", "recipe")})

    def get_job(self, request: Request, key: ApiKey) -> dict:
        job = self.services.jobs.get(request.params["job_id"]) if self.services.jobs else None
        if job is None or job.tenant != key.tenant:  # another tenant's job is not there either
            raise ApiError(404, "not_found", f"There is no job '{request.params['job_id']}' here.")
        return _json(200, {"job_id": job.job_id, "dataset": job.name, "state": job.state, "kind": job.kind,
                           "recipe": job.recipe, "enqueued_at": job.enqueued_at, "started_at": job.started_at,
                           "finished_at": job.finished_at, "model_version": job.model_version,
                           "error": job.error})

    def predict(self, request: Request, key: ApiKey) -> dict:
        name = request.params["name"]
        if request.content_type in IMAGE_TYPES:
            reply = self._run(key, "predict", name, attachment=Attachment("image", request.body))
        else:
            body = request.json()
            if isinstance(body.get("text"), str):
                reply = self._run(key, "predict", name, *body["text"].split())
            elif isinstance(body.get("image"), str):
                try:
                    image = base64.b64decode(body["image"], validate=True)
                except (binascii.Error, ValueError):
                    raise ApiError(400, "bad_request", "'image' must be base64.") from None
                reply = self._run(key, "predict", name, attachment=Attachment("image", image))
            else:
                raise ApiError(400, "bad_request",
                               'Send {"text": "..."}, {"image": "<base64>"} or the image bytes (image/jpeg, image/png).')
        data = reply.data
        return _json(200, {k: data.get(k) for k in ("label", "confidence", "top", "model_version", "sure",
                                                     "confidence_threshold", "prediction_id")})

    def model(self, request: Request, key: ApiKey) -> dict:
        version = request.query.get("version")
        reply = self._run(key, "export", request.params["name"], *([version] if version else []))
        filename, data = reply.file
        return {"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(data).decode("ascii"),
                "headers": {"content-type": "application/zip",
                            "content-disposition": f'attachment; filename="{filename}"'}}

    def upload_url(self, request: Request, key: ApiKey) -> dict:
        given = request.json() if request.body.strip() else {}
        content_type = str(given.get("content_type") or request.query.get("content_type") or "").lower()
        filename = UPLOAD_TYPES.get(content_type)
        if filename is None:
            raise ApiError(400, "bad_request", 'Say what you will send: {"content_type": "application/zip"} '
                                               '(images) or {"content_type": "text/csv"}.')
        content_type = "application/zip" if filename.endswith(".zip") else "text/csv"
        limits = self.services.limits
        host = request.headers.get("x-forwarded-host") or request.headers.get("host") or "localhost"
        scheme = request.headers.get("x-forwarded-proto", "http")
        upload, url, fields = uploads.start(
            self.services.blobs, tenant=key.tenant, key_id=key.key_id, name=normalise_name(request.params["name"]),
            content_type=content_type, description=str(given.get("description") or request.query.get("description") or ""),
            max_bytes=limits.max_archive_bytes if filename.endswith(".zip") else limits.max_csv_bytes,
            own_url=f"{scheme}://{host}/v1/uploads", now=self.clock())
        return _json(201, {"upload_id": upload.upload_id, "url": url, "method": "POST", "fields": fields,
                           "expires_at": upload.expires_at, "max_bytes": upload.max_bytes,
                           "status_url": f"/v1/uploads/{upload.upload_id}"})

    def get_upload(self, request: Request, key: ApiKey) -> dict:
        upload = uploads.load(self.services.blobs, key.tenant, request.params["upload_id"])
        if upload is None:
            raise ApiError(404, "not_found", f"There is no upload '{request.params['upload_id']}' here.")
        return _json(200, upload.shown(self.clock()))

    def receive_form(self, request: Request, key: ApiKey | None = None) -> dict:
        """The local stand-in for S3's presigned POST: the same fields, the file last; 204 as S3 answers."""
        form = _form(request)
        upload = uploads.landed(self.services.blobs, form.get("key", b"").decode("utf-8", "replace"))
        if upload is None or not uploads.token_matches(upload, form.get("token", b"").decode("utf-8", "replace")) \
                or self.clock() > upload.expires_at:
            raise ApiError(403, "forbidden", "This upload form is not valid (or has expired): ask for a new one "
                                             "with POST /v1/datasets/{name}/upload-url.")
        data = form.get("file")
        if data is None:
            raise ApiError(400, "bad_request", "The form has no 'file' field (send it last).")
        if len(data) > upload.max_bytes:
            raise ApiError(413, "too_large", f"The file is over {upload.max_bytes // (1024 * 1024)} MB.")
        self.services.blobs.put(upload.object_key, data, upload.content_type)
        self.accept(upload.object_key)
        return {"statusCode": 204, "headers": {}, "body": ""}

    def accept(self, object_key: str) -> uploads.Upload | None:
        """Validate and store a file that landed through an upload form, as its key's tenant; record the
        outcome on the upload and delete the file. None for a key that is no waiting upload's file. A store
        that fails raises (the event is delivered again); every other outcome is recorded."""
        blobs = self.services.blobs
        upload = uploads.landed(blobs, object_key)
        if upload is None:
            return None
        try:
            key = key_of(blobs, upload.tenant, upload.key_id)
            if key.revoked:
                raise UnknownApiKey(key.key_id)
            if blobs.size(object_key) > upload.max_bytes:  # S3 refuses it first; a store without the check
                raise ApiError(413, "too_large", f"The file is over {upload.max_bytes // (1024 * 1024)} MB.")
            reply = self._run(key, "upload", upload.name, *upload.description.split(),
                              attachment=Attachment(upload.filename, blobs.get(object_key)))
            upload.state, upload.message = uploads.STORED, reply.text
            upload.result = {**reply.data, "dataset": _record(reply.data["dataset"])}
        except _Rejected as exc:
            upload.state, upload.message, upload.result = uploads.REJECTED, exc.message, {"validation": exc.validation}
        except UnknownApiKey:  # revoked (or deleted) since it asked
            upload.state, upload.message = uploads.FAILED, "The API key that asked for this upload was revoked."
        except ApiError as exc:
            upload.state, upload.message, upload.result = uploads.FAILED, exc.message, {"code": exc.code}
        except MlbotError as exc:
            if STATUS.get(exc.code) == 503:
                raise
            upload.state, upload.message, upload.result = uploads.FAILED, exc.user_message(), {"code": exc.code}
        uploads.save(blobs, upload)
        blobs.delete(object_key)
        log.info("upload %s of %s: %s", upload.upload_id, upload.tenant, upload.state)
        return upload

    # --- helpers ------------------------------------------------------------------------------------------

    def _run(self, key: ApiKey, verb: str, *args: str, attachment: Attachment | None = None) -> Reply:
        """The chat's use case, as the key: its tenant, the admin rights of whoever made it, its chat for
        notices. A refusal raises (its code becomes the status)."""
        cmd = Command(verb, key.tenant, f"apikey:{key.key_id}", tuple(args), attachment, admin=True)
        reply = dispatch(cmd, self.services, reply_to=key.destination())
        if not reply.ok:
            if "validation" in reply.data:
                raise _Rejected(reply)
            code = str(reply.data.get("error", "error"))
            raise ApiError(STATUS.get(code, 400), code, reply.text)
        return reply


class _Rejected(ApiError):
    """An upload refused by validation: 400, with every problem."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(400, "rejected", reply.text)
        self.validation = reply.data["validation"]


def _form(request: Request) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (the standard library's MIME parser; bytes kept as sent)."""
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Post the upload form as multipart/form-data.")
    header = request.headers.get("content-type", "").encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + header + b"\r\n\r\n" + request.body)
    if not message.is_multipart():
        raise ApiError(400, "bad_request", "The upload form could not be read.")
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields[name] = part.get_payload(decode=True) or b""
    return fields


def _bearer(request: Request) -> str | None:
    given = request.headers.get("authorization", "")
    return given[7:].strip() if given.lower().startswith("bearer ") else (given or None)


def _record(data: dict) -> dict:
    """A Dataset record as the API shows it: no storage paths, no revision counter."""
    hidden = {"dataset_path", "model_path", "vocab_path", "revision", "tenant"}
    return {k: v for k, v in data.items() if k not in hidden}


def _json(status: int, body: Any) -> dict:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(body, default=str, sort_keys=True)}


def _error(status: int, code: str, message: str, **extra: Any) -> dict:
    return _json(status, {"error": {"code": code, "message": message, **extra}})
