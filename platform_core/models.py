"""Model artifacts: one versioned folder per trained model, written completely before anyone points at it.

Layout under ``models/<tenant>/<name>/v<N>/``: model.onnx (preprocessed input -> probabilities),
classes.json, preprocess.json, metrics.json, confusion.png, any extra files (vocab.json,
tokenizer.json), and manifest.json written last. Inference reads nothing else.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from platform_core.errors import ModelUnavailable, StorageError
from platform_core.ports import BlobStore
from platform_core.records import model_prefix, utc_now

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StoredModel:
    """Where a stored model lives; ``model_path`` is the version folder the Dataset record points at."""

    model_path: str
    version: int
    vocab_path: str | None


@dataclass(frozen=True)
class ModelArtifacts:
    classes: list[str]
    onnx_model: bytes
    preprocess: dict[str, Any]
    metrics: dict[str, Any]
    confusion_png: bytes
    extra_files: dict[str, bytes]


def store_model(blobs: BlobStore, tenant: str, name: str, version: int, artifacts: ModelArtifacts) -> StoredModel:
    """Write every artifact, then the manifest; on failure remove what was written and re-raise."""
    folder = f"{model_prefix(tenant, name)}v{version}/"
    files: dict[str, bytes] = {
        "model.onnx": artifacts.onnx_model,
        "classes.json": json.dumps(artifacts.classes).encode(),
        "preprocess.json": json.dumps(artifacts.preprocess, sort_keys=True).encode(),
        "metrics.json": json.dumps(artifacts.metrics, sort_keys=True).encode(),
        "confusion.png": artifacts.confusion_png,
        **artifacts.extra_files,
    }
    written: list[str] = []
    try:
        for key in blobs.list(folder):  # leftovers of an earlier attempt at this version
            blobs.delete(key)
        for filename, data in files.items():
            blobs.put(folder + filename, data)
            written.append(folder + filename)
        manifest = {"version": version, "classes": artifacts.classes, "preprocess": artifacts.preprocess,
                    "created_at": utc_now(), "files": {f: hashlib.sha256(d).hexdigest() for f, d in files.items()}}
        blobs.put(folder + MANIFEST, json.dumps(manifest, sort_keys=True).encode(), "application/json")
    except BaseException:
        for key in written:
            try:
                blobs.delete(key)
            except StorageError:
                pass
        raise
    vocab = folder + "vocab.json" if "vocab.json" in artifacts.extra_files else None
    return StoredModel(model_path=folder, version=version, vocab_path=vocab)


def load_manifest(blobs: BlobStore, model_path: str) -> dict[str, Any]:
    """The manifest of a complete model folder."""
    try:
        return json.loads(blobs.get(model_path + MANIFEST))
    except StorageError as exc:
        raise ModelUnavailable(model_path, f"no manifest ({exc.cause})") from exc


def load_file(blobs: BlobStore, model_path: str, filename: str, manifest: dict[str, Any]) -> bytes:
    """One artifact, checked against the manifest's digest."""
    expected = manifest["files"].get(filename)
    if expected is None:
        raise ModelUnavailable(model_path, f"{filename} is not part of this model")
    data = blobs.get(model_path + filename)
    if hashlib.sha256(data).hexdigest() != expected:
        raise ModelUnavailable(model_path, f"{filename} does not match its manifest digest")
    return data


def version_path(tenant: str, name: str, version: int) -> str:
    """The folder of one model version (the Dataset record's model_path when it is current)."""
    return f"{model_prefix(tenant, name)}v{version}/"


def stored_versions(blobs: BlobStore, tenant: str, name: str) -> list[int]:
    """Complete model versions (those with a manifest), oldest first."""
    prefix = model_prefix(tenant, name)
    found = set()
    for key in blobs.list(prefix):
        folder, _, filename = key[len(prefix):].partition("/")
        if filename == MANIFEST and folder[:1] == "v" and folder[1:].isascii() and folder[1:].isdigit():
            found.add(int(folder[1:]))
    return sorted(found)


def next_version(blobs: BlobStore, tenant: str, name: str, current: int | None) -> int:
    """The number a new model gets: above every stored version, so retraining never overwrites one
    (after a rollback the current version is not the newest)."""
    return max([current or 0, *stored_versions(blobs, tenant, name)]) + 1


def version_summary(blobs: BlobStore, tenant: str, name: str, version: int) -> dict[str, Any]:
    """What `models NAME` shows of a version: accuracies, recipe, classes, when it was trained."""
    path = version_path(tenant, name, version)
    manifest = load_manifest(blobs, path)
    metrics = json.loads(load_file(blobs, path, "metrics.json", manifest))
    return {"version": version, "model_path": path, "created_at": manifest.get("created_at"),
            "classes": manifest.get("classes"), "recipe": metrics.get("recipe"),
            "train_accuracy": metrics.get("train_accuracy"), "validation_accuracy": metrics.get("validation_accuracy")}
