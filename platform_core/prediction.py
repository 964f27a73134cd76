"""The prediction contract between the chat side and the inference Lambda.

Request event, one JSON object:
    {"tenant": "slack:T1", "dataset": "shoes", "top": 3 (optional), and exactly one of
     "image_base64": "...", "image_key": "predict-inputs/<tenant>/<id>", "text": "..."}
An image whose base64 would not fit Lambda's 6 MB synchronous payload travels as ``image_key``: the
caller stores it under the tenant's own ``predict-inputs/`` prefix first, and the handler refuses any
other key (and deletes the object once read; the bucket also expires the prefix after a day).

Answer, one JSON object:
    {"ok": true, "label", "confidence", "top": [[label, p], ...], "model_version", "dataset"}
    {"ok": false, "error": {"code": "not_found" | "not_trained" | "bad_input" | ..., "message": "..."}}
"""
from __future__ import annotations

import base64
import uuid
from typing import Any, Callable

from platform_core.config import MB
from platform_core.errors import BadPredictionInput, MlbotError, PredictionFailed
from platform_core.ports import BlobStore

MAX_IMAGE_BYTES = 20 * MB  # a phone photo as chats send it (Telegram's bot download limit)
MAX_INLINE_IMAGE_BYTES = 4 * MB  # base64 makes 4 MB into 5.4 MB, under Lambda's 6 MB request payload
MAX_TEXT_CHARS = 5000
INPUT_PREFIX = "predict-inputs"


def input_prefix(tenant: str) -> str:
    """Where a tenant's oversized prediction images wait for the handler."""
    return f"{INPUT_PREFIX}/{tenant}/"


def check_image_size(size: int) -> None:
    """Refuse an image over MAX_IMAGE_BYTES (before anything reads it) or an empty one."""
    if size > MAX_IMAGE_BYTES:
        raise BadPredictionInput(f"the image is {size / MB:.1f} MB; send one of at most {MAX_IMAGE_BYTES // MB} MB")
    if size == 0:
        raise BadPredictionInput("the image file is empty")


def request_event(tenant: str, name: str, *, image: bytes | None = None, text: str | None = None,
                  blobs: BlobStore | None = None, new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> dict:
    """The handler's event for one prediction; a large image goes through ``blobs`` as ``image_key``."""
    event: dict[str, Any] = {"tenant": tenant, "dataset": name}
    if image is not None:
        check_image_size(len(image))
        if len(image) <= MAX_INLINE_IMAGE_BYTES or blobs is None:
            event["image_base64"] = base64.b64encode(image).decode("ascii")
        else:
            key = input_prefix(tenant) + new_id()
            blobs.put(key, image)
            event["image_key"] = key
    elif text is not None:
        event["text"] = text
    return event


def error_answer(exc: MlbotError) -> dict[str, Any]:
    """The error object for a failure the user can act on."""
    return {"ok": False, "error": {"code": exc.code, "message": exc.user_message()}}


def result(answer: Any) -> dict[str, Any]:
    """The answer's fields without ``ok``; an error object (or a malformed answer) raises PredictionFailed."""
    if not isinstance(answer, dict):
        raise PredictionFailed("internal", "The predictor gave no usable answer; try again in a minute.")
    if not answer.get("ok"):
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        raise PredictionFailed(str(error.get("code") or "internal"),
                               str(error.get("message") or "The prediction failed; try again in a minute."))
    return {k: v for k, v in answer.items() if k != "ok"}
