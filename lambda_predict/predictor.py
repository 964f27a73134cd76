"""Predictions from stored models with ONNX Runtime; the model is loaded once and keyed by its version.

Used by the inference Lambda, by the trainer's /predict_* endpoints and by `mlbot predict`.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from platform_core.config import MAX_IMAGE_PIXELS
from platform_core.errors import BadPredictionInput, DatasetNotFound, ModelNotTrained
from platform_core.models import load_file, load_manifest
from platform_core.ports import BlobStore, DatasetRepository
from platform_core.prediction import MAX_TEXT_CHARS
from platform_core.records import normalise_name

# What a prediction image may be: the formats chats send, and at most this many pixels once a JPEG is
# decoded at reduced scale (a 200-megapixel JPEG is 3 megapixels in draft mode; a PNG has no such mode).
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


@dataclass
class LoadedModel:
    model_path: str
    version: int
    kind: str
    dataset: str
    classes: list[str]
    spec: dict[str, Any]
    files: dict[str, bytes]
    session: Any  # onnxruntime.InferenceSession
    threshold: float | None = None  # below this confidence the model is not sure (chosen on validation data)


class Predictor:
    """Answers label, confidence and top classes from a dataset's current model."""

    def __init__(self, *, blobs: BlobStore, records: DatasetRepository) -> None:
        self._blobs = blobs
        self._records = records
        self._cache: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def predict(self, tenant: str, name: str, *, image: bytes | None = None, text: str | None = None,
                top: int = 3) -> dict[str, Any]:
        """One prediction; raises an MlbotError with a user sentence for every bad input."""
        model = self.model(tenant, name)
        probabilities = self.probabilities(model, image=image, text=text)
        order = np.argsort(-probabilities)[:max(1, top)]
        best = int(order[0])
        confidence = float(probabilities[best])
        return {"label": model.classes[best], "confidence": confidence,
                "top": [[model.classes[int(i)], float(probabilities[int(i)])] for i in order],
                "sure": model.threshold is None or confidence >= model.threshold,
                "confidence_threshold": model.threshold, "model_version": model.version, "dataset": model.dataset}

    def model(self, tenant: str, name: str) -> LoadedModel:
        """The dataset's current model: looked up on every call, loaded only when its version is new."""
        name = normalise_name(name)
        record = self._records.get(tenant, name)
        if record is None:
            raise DatasetNotFound(name)
        if not record.model_path:
            raise ModelNotTrained(name, record.training_status)
        return self._load(record.model_path, record.kind, name)

    def _load(self, model_path: str, kind: str, dataset: str) -> LoadedModel:
        with self._lock:
            cached = self._cache.get(model_path)
            if cached is not None:
                return cached
            import onnxruntime as ort

            manifest = load_manifest(self._blobs, model_path)
            files = {f: load_file(self._blobs, model_path, f, manifest)
                     for f in manifest["files"] if f.endswith(".json") and f not in ("metrics.json",)}
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(load_file(self._blobs, model_path, "model.onnx", manifest),
                                           options, providers=["CPUExecutionProvider"])
            metrics = json.loads(load_file(self._blobs, model_path, "metrics.json", manifest))
            model = LoadedModel(model_path, int(manifest["version"]), kind, dataset,
                                json.loads(files["classes.json"]), manifest["preprocess"], files, session,
                                metrics.get("confidence_threshold"))
            # A new version replaces the old one: keep one model per dataset folder.
            prefix = model_path.rsplit("/v", 1)[0]
            for key in [k for k in self._cache if k.rsplit("/v", 1)[0] == prefix]:
                del self._cache[key]
            self._cache[model_path] = model
            return model

    def probabilities(self, model: LoadedModel, *, image: bytes | None = None,
                      text: str | None = None) -> np.ndarray:
        """Class probabilities for one image or text: what every export runs too
        (platform_core.preprocess.portable), behind the checks that give the user a sentence."""
        from platform_core.preprocess.portable import ImageTooLarge, probabilities

        if model.kind == "image":
            if not image:
                raise BadPredictionInput("this dataset classifies images: send an image")
            try:
                return probabilities(model.session, model.spec, model.files, image=image,
                                     max_pixels=MAX_IMAGE_PIXELS, formats=IMAGE_FORMATS)
            except ImageTooLarge as exc:
                raise BadPredictionInput(f"the image is too large to read ({exc}); send a smaller one") from None
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise BadPredictionInput("the file is not a readable image (JPEG, PNG, WebP, GIF or BMP)") from exc
        if text is None or not text.strip():
            raise BadPredictionInput("this dataset classifies text: send some text")
        if len(text) > MAX_TEXT_CHARS:
            raise BadPredictionInput(f"the text is longer than {MAX_TEXT_CHARS} characters")
        return probabilities(model.session, model.spec, model.files, text=text)
