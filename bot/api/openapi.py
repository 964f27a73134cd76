"""The REST API's OpenAPI 3.1 document (`GET /v1/openapi.json`, the one route without a key).

Written beside the routes (bot.api.routes) and checked against them: a test validates the document and every
response the API tests see against its schema. ``x-original-operation`` marks the routes that carry the six
REST operations of the original system.
"""
from __future__ import annotations

from typing import Any

ORIGINAL = {
    ("/v1/datasets/{name}", "post"): ["upload image classification data", "upload sentiment analysis data"],
    ("/v1/datasets/{name}/train", "post"): ["train an image classifier", "train a sentiment analyser"],
    ("/v1/datasets/{name}/predict", "post"): ["predict an image's class", "predict a text's sentiment"],
}
ERRORS = {"400": "a bad request, or an upload that validation refused (`validation` lists every problem)",
          "401": "no API key, or one that is not valid", "403": "a revoked API key",
          "404": "no such dataset or job here (another tenant's is the same 404)",
          "405": "the path exists, not with this method", "409": "the dataset is busy, or has no model yet",
          "413": "the body is too large", "415": "a body type this route does not take",
          "429": "over this key's requests per minute (Retry-After says when to try again)",
          "500": "something went wrong on our side", "503": "a store or the trainers are unavailable"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


NAME = {"name": "name", "in": "path", "required": True, "description": "the dataset's name (case-insensitive)",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"}}
NUMBER = {"type": ["number", "null"]}
TEXT = {"type": ["string", "null"]}
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "validation": _ref("Validation")}}}},
    "Dataset": {"type": "object", "required": ["name", "kind", "training_status"], "properties": {
        "name": {"type": "string"}, "kind": {"enum": ["image", "sentiment"]}, "owner": {"type": "string"},
        "description": {"type": "string"}, "class_counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "dataset_version": {"type": "integer"}, "training_status": {"type": "string"},
        "model_version": {"type": ["integer", "null"]}, "training_accuracy": NUMBER, "validation_accuracy": NUMBER,
        "size_bytes": {"type": "integer"}, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "training_error": TEXT, "last_job_id": TEXT}},
    "Validation": {"type": "object", "required": ["valid", "kind", "classes", "errors", "warnings", "problems"],
                   "properties": {
                       "valid": {"type": "boolean"}, "kind": {"type": "string"},
                       "classes": {"type": "object", "additionalProperties": {"type": "integer"}},
                       "errors": {"type": "array", "items": {"type": "string"}},
                       "warnings": {"type": "array", "items": {"type": "string"}},
                       "problems": {"type": "array", "items": {"type": "object", "properties": {
                           "code": {"type": "string"}, "where": TEXT, "message": {"type": "string"},
                           "severity": {"enum": ["error", "warning"]}}}}}},
    "Stored": {"type": "object", "required": ["stored", "dataset", "validation"], "properties": {
        "stored": {"const": True}, "dataset": _ref("Dataset"), "validation": _ref("Validation")}},
    "Queued": {"type": "object", "required": ["job_id", "position", "joined"], "properties": {
        "job_id": {"type": "string"}, "position": {"type": "integer", "minimum": 0}, "joined": {"type": "boolean"},
        "name": {"type": "string"}, "recipe": {"type": "string"}}},
    "Job": {"type": "object", "required": ["job_id", "dataset", "state"], "properties": {
        "job_id": {"type": "string"}, "dataset": {"type": "string"},
        "state": {"enum": ["queued", "running", "succeeded", "failed"]}, "kind": {"type": "string"},
        "recipe": {"type": "string"}, "enqueued_at": {"type": "number"}, "started_at": NUMBER,
        "finished_at": NUMBER, "model_version": {"type": ["integer", "null"]}, "error": TEXT}},
    "PredictRequest": {"oneOf": [
        {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
        {"type": "object", "required": ["image"], "properties": {"image": {
            "type": "string", "contentEncoding": "base64", "description": "a JPEG, PNG, WebP, GIF or BMP"}}}]},
    "Prediction": {"type": "object", "required": ["label", "confidence", "top", "model_version", "sure"],
                   "properties": {
                       "label": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                       "top": {"type": "array", "items": {"type": "array", "prefixItems": [
                           {"type": "string"}, {"type": "number"}], "minItems": 2, "maxItems": 2}},
                       "model_version": {"type": "integer"},
                       "sure": {"type": "boolean", "description": "false below the model's confidence threshold"},
                       "confidence_threshold": NUMBER, "prediction_id": {"type": "string"}}},
    "UploadForm": {"type": "object", "required": ["upload_id", "url", "method", "fields", "expires_at", "max_bytes",
                                                  "status_url"], "properties": {
        "upload_id": {"type": "string"},
        "url": {"type": "string", "description": "POST a multipart/form-data body here: every field, then the file"},
        "method": {"const": "POST"}, "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        "expires_at": {"type": "number", "description": "Unix time after which the form takes nothing"},
        "max_bytes": {"type": "integer"}, "status_url": {"type": "string"}}},
    "Upload": {"type": "object", "required": ["upload_id", "dataset", "state", "message"], "properties": {
        "upload_id": {"type": "string"}, "dataset": {"type": "string"},
        "state": {"enum": ["waiting", "stored", "rejected", "failed", "expired"]}, "message": {"type": "string"},
        "expires_at": {"type": "number"},
        "result": {"type": "object", "description": "stored: as the upload route's 201 (Stored); rejected: "
                                                     "`validation`; failed: `code`"}}},
}


def _operation(summary: str, responses: dict, *, parameters: list | None = None, body: dict | None = None,
               query: list | None = None) -> dict:
    op: dict[str, Any] = {"summary": summary, "security": [{"apiKey": []}],
                          "parameters": [*(parameters or []), *(query or [])],
                          "responses": {**responses, "default": _json(_ref("Error"), "an error, as listed")}}
    if body is not None:
        op["requestBody"] = body
    return op


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/v1/datasets": {"get": _operation("this tenant's datasets", {"200": _json(
            {"type": "object", "required": ["datasets"],
             "properties": {"datasets": {"type": "array", "items": _ref("Dataset")}}}, "the datasets")})},
        "/v1/datasets/{name}": {
            "get": _operation("one dataset", {"200": _json(_ref("Dataset"), "its record")}, parameters=[NAME]),
            "post": _operation(
                "upload (or replace) a dataset, validated as a chat upload",
                {"201": _json(_ref("Stored"), "stored, with its report card")}, parameters=[NAME],
                query=[{"name": "description", "in": "query", "schema": {"type": "string"}}],
                body={"required": True, "content": {
                    "application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip",
                                                   "description": "one folder of JPEG or PNG images per class"}},
                    "text/csv": {"schema": {"type": "string", "description": "text,label rows"}}}})},
        "/v1/datasets/{name}/train": {"post": _operation(
            "queue training", {"202": _json(_ref("Queued"), "queued (or joined the queued job)")},
            parameters=[NAME], query=[{"name": "recipe", "in": "query", "schema": {"type": "string"}}])},
        "/v1/jobs/{job_id}": {"get": _operation(
            "a training job", {"200": _json(_ref("Job"), "its state")},
            parameters=[{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}])},
        "/v1/datasets/{name}/predict": {"post": _operation(
            "label and confidence from the current model", {"200": _json(_ref("Prediction"), "the answer")},
            parameters=[NAME], body={"required": True, "content": {
                "application/json": {"schema": _ref("PredictRequest")},
                **{t: {"schema": {"type": "string", "contentMediaType": t}} for t in ("image/jpeg", "image/png")}}})},
        "/v1/datasets/{name}/model": {"get": _operation(
            "the model as a zip that runs without mlbot (onnxruntime, numpy, Pillow)",
            {"200": {"description": "model.onnx, its preprocessing, metrics, mlbot_model.py and a README",
                     "content": {"application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip"}}}}},
            parameters=[NAME], query=[{"name": "version", "in": "query", "schema": {"type": "integer"}}])},
        "/v1/datasets/{name}/upload-url": {"post": _operation(
            "a form to post a file too large for one request (over 6 MB) straight to storage; it is validated "
            "as a chat upload when it lands (poll status_url)",
            {"201": _json(_ref("UploadForm"), "where to post the file, and the fields to send with it")},
            parameters=[NAME], body={"required": False, "content": {"application/json": {"schema": {
                "type": "object", "required": ["content_type"], "properties": {
                    "content_type": {"enum": ["application/zip", "text/csv"]},
                    "description": {"type": "string"}}}}}})},
        "/v1/uploads/{upload_id}": {"get": _operation(
            "an upload made with upload-url", {"200": _json(_ref("Upload"), "waiting, stored, rejected, failed or expired")},
            parameters=[{"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}])},
        "/v1/uploads": {"post": {
            "summary": "the upload form's target where storage has no presigned form (mlbot serve); on AWS the "
                       "form goes to S3. No API key: the form's one-time token proves it",
            "security": [], "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["key", "token", "file"], "properties": {
                    "key": {"type": "string"}, "token": {"type": "string"}, "Content-Type": {"type": "string"},
                    "file": {"type": "string", "contentMediaType": "application/octet-stream"}}}}}},
            "responses": {"204": {"description": "received, validated and recorded on the upload"},
                          "default": _json(_ref("Error"), "an error, as listed")}}},
        "/v1/openapi.json": {"get": {"summary": "this document", "security": [], "responses": {
            "200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    }
    for (path, method), operations in ORIGINAL.items():
        paths[path][method]["x-original-operation"] = operations
    described = "\n".join(f"- {status}: {what}" for status, what in ERRORS.items())
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlbot", "version": "1",
                 "description": "Train image and text classifiers and call them from code. Every route but this "
                                "document wants `Authorization: Bearer <key>` (`apikey new` in the chat, or "
                                "`mlbot apikey create`). Errors are `{\"error\": {\"code\", \"message\"}}`:\n"
                                + described},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "paths": paths,
    }
