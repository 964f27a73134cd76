"""The inference Lambda's entry point, and the same function called in process by `mlbot predict` and the
trainer's /predict_* routes.

The event and answer shapes are platform_core.prediction's contract. Every failure comes back as an error
object with a code and a sentence for the user, never as a stack trace; the model is loaded once per warm
container (lambda_predict.predictor caches it by version).
"""
from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from platform_core.adapters.aws_powertools import lambda_entry
from platform_core.errors import BadPredictionInput, BlobNotFound, MlbotError, UsageError
from platform_core.ports import BlobStore
from platform_core.prediction import (MAX_IMAGE_BYTES, error_answer, input_prefix, check_image_size,
                                      request_event, result)
from lambda_predict.predictor import Predictor

log = logging.getLogger(__name__)
MAX_TOP = 10
INTERNAL = {"ok": False, "error": {"code": "internal",
                                   "message": "The prediction failed on our side; try again in a minute."}}


def answer(event: Any, predictor: Predictor, blobs: BlobStore) -> dict[str, Any]:
    """One prediction for one event: the answer object, or an error object."""
    try:
        tenant, name, image, text, top = _parse(event, blobs)
        return {"ok": True, **predictor.predict(tenant, name, image=image, text=text, top=top)}
    except MlbotError as exc:
        return error_answer(exc)
    except Exception:  # a bug or an outage: logged with its trace, answered without it
        log.exception("prediction failed")
        return dict(INTERNAL)


def _parse(event: Any, blobs: BlobStore) -> tuple[str, str, bytes | None, str | None, int]:
    if not isinstance(event, dict):
        raise UsageError("send a JSON object with tenant, dataset and image_base64, image_key or text")
    tenant, name = event.get("tenant"), event.get("dataset")
    if not isinstance(tenant, str) or not tenant or not isinstance(name, str) or not name:
        raise UsageError("the event needs tenant and dataset, both text")
    given = [k for k in ("image_base64", "image_key", "text") if event.get(k) is not None]
    if len(given) != 1:
        raise BadPredictionInput("send exactly one of an image or a text")
    top = event.get("top", 3)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= MAX_TOP:
        raise UsageError(f"top must be a whole number from 1 to {MAX_TOP}")
    text = event.get("text")
    if text is not None and not isinstance(text, str):
        raise BadPredictionInput("the text must be a string")
    image = None
    if "image_base64" in given:
        image = _decode(event["image_base64"])
    elif "image_key" in given:
        image = _fetch(event["image_key"], tenant, blobs)
    return tenant, name, image, text, top


def _decode(encoded: Any) -> bytes:
    if not isinstance(encoded, str):
        raise BadPredictionInput("image_base64 must be a base64 string")
    if len(encoded) * 3 // 4 > MAX_IMAGE_BYTES + 2:  # refused before decoding anything
        check_image_size(len(encoded) * 3 // 4)
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadPredictionInput("image_base64 is not valid base64") from None
    check_image_size(len(image))
    return image


def _fetch(key: Any, tenant: str, blobs: BlobStore) -> bytes:
    """An oversized image the caller stored under the tenant's own prefix; read once, then deleted."""
    if not isinstance(key, str) or not key.startswith(input_prefix(tenant)) or ".." in key.split("/"):
        raise BadPredictionInput("image_key must name an upload under this workspace's prediction inputs")
    try:
        check_image_size(blobs.size(key))
        return blobs.get(key)
    except BlobNotFound:
        raise BadPredictionInput("the uploaded image is gone (inputs are kept for a day); send it again") from None
    finally:
        blobs.delete(key)


class InProcessPredictions:
    """The PredictionService of the local backend and the trainer: the handler function, called directly.

    Events are built exactly as for the Lambda (large images through the blob store), so this path runs
    the same contract the deployed one does.
    """

    def __init__(self, predictor: Predictor, blobs: BlobStore) -> None:
        self.predictor, self.blobs = predictor, blobs

    def predict(self, tenant: str, name: str, *, image: bytes | None = None,
                text: str | None = None) -> dict[str, Any]:
        event = request_event(tenant, name, image=image, text=text, blobs=self.blobs)
        return result(answer(event, self.predictor, self.blobs))


_runtime: tuple[Predictor, BlobStore] | None = None


def _build() -> tuple[Predictor, BlobStore]:
    """Stores from the environment (platform_core.config), once per container."""
    from platform_core.backend import backend_for
    from platform_core.config import Settings

    backend = backend_for(Settings.from_env())
    return Predictor(blobs=backend.blobs, records=backend.records), backend.blobs


@lambda_entry("mlbot-predict")
def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point (template.yaml: lambda_predict.handler.handler)."""
    global _runtime
    try:
        if _runtime is None:
            _runtime = _build()
    except MlbotError as exc:  # a missing setting: the deployer's problem, said plainly in the log
        log.error("predict Lambda misconfigured: %s", exc.user_message())
        return dict(INTERNAL)
    return answer(event, *_runtime)
