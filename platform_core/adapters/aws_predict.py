"""Lambda invocations: the PredictionService of the AWS backend (a synchronous invoke of the inference
Lambda), and asynchronous hand-offs of work to a second invocation.

Images too large for Lambda's 6 MB request payload go through S3 (platform_core.prediction's contract).
"""
from __future__ import annotations

import json
from typing import Any

# aws.py stays the one module importing boto3; its plumbing is shared rather than copied.
from platform_core.adapters.aws import aws_errors, LazyClient
from platform_core.ports import BlobStore
from platform_core.prediction import request_event, result


class LambdaPredictions:
    """Invokes ``function`` (name or ARN) with the prediction event and reads its answer."""

    def __init__(self, *, function: str, blobs: BlobStore, client: Any = None) -> None:
        self._function = function
        self._blobs = blobs
        self._lambda = LazyClient("lambda", client)

    def predict(self, tenant: str, name: str, *, image: bytes | None = None,
                text: str | None = None) -> dict[str, Any]:
        event = request_event(tenant, name, image=image, text=text, blobs=self._blobs)
        with aws_errors("invoke", self._function):
            response = self._lambda().invoke(FunctionName=self._function, InvocationType="RequestResponse",
                                             Payload=json.dumps(event).encode())
            payload = response["Payload"].read()
        if response.get("FunctionError"):  # the runtime itself failed (timeout, out of memory)
            return result({"ok": False, "error": {"code": "internal", "message":
                           "The predictor did not finish (it may have run out of time or memory); try again."}})
        try:
            return result(json.loads(payload))
        except ValueError:
            return result(None)


class AsyncInvocation:
    """Hands a payload to a Lambda function asynchronously (InvocationType Event): the Telegram webhook
    answers at once and processes the update in a second invocation of itself."""

    def __init__(self, *, function: str, client: Any = None) -> None:
        self._function = function
        self._lambda = LazyClient("lambda", client)

    def __call__(self, payload: dict[str, Any]) -> None:
        with aws_errors("invoke", self._function):
            self._lambda().invoke(FunctionName=self._function, InvocationType="Event",
                                  Payload=json.dumps(payload).encode())
