"""End-to-end benchmark: from an upload on the console channel to the training-finished notification.

Run by `make bench` (bench.run e2e), or alone with `python -m bench.end_to_end`. The largest datasets the
intake takes (tools.realdata: 10 classes x 100 Fashion-MNIST images upscaled to 96 px, and 3 classes x 1000
rated snippets), each uploaded, trained with its default recipe and notified in one fresh process on the
local backend, as `mlbot chat` runs it (training in a thread of the same process). The breakdown:

- validate: the upload's validation (timed inside the upload use case);
- store: the rest of the upload (normalised file and record written);
- queue: from the upload's answer to the trainer taking the job (the `train` command included);
- train: the recipe (the text recipe's encoding, the image trunk's pass, the heads, the metrics, the
  confusion matrix and mistakes pictures);
- export + check: the ONNX export and its check against torch;
- save: the rest of the job (the dataset read, the model stored, the record updated);
- notify: from the job's end to the notification (summary, confusion matrix and mistakes) shown.
The phases add up to the total.
Goals (issue 18): images under 60 s, text under 3 minutes, on 2 cores.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from bench.child import run_child, serve


def child(kind: str) -> None:
    """One dataset, upload to notification, in this fresh process; prints the phases as JSON."""
    import handlers.upload
    from bot.console.chat import ConsoleChat
    from platform_core.config import Settings
    from tools import realdata
    from trainer_ec2 import image_training, text_training

    spent: dict[str, float] = {"validate": 0.0, "export + check": 0.0, "recipe": 0.0}

    def timed(name: str, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    handlers.upload.validate_dataset = timed("validate", handlers.upload.validate_dataset)
    image_training.check_graph = timed("export + check", image_training.check_graph)
    text_training.export_checked = timed("export + check", text_training.export_checked)
    image_training.train_image_classifier = timed("recipe", image_training.train_image_classifier)
    text_training.train_sentiment_classifier = timed("recipe", text_training.train_sentiment_classifier)
    data, name = (realdata.largest_zip(), "big.zip") if kind == "image" else (realdata.largest_csv(), "big.csv")
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / name
        path.write_bytes(data)
        chat = ConsoleChat(Settings(backend="local", home=Path(home) / "mlbot"), tenant="console:bench", user="bench",
                           out=io.StringIO())
        start = time.time()
        uploaded = chat.say(f"upload big --file {path}")
        stored = time.time()
        assert uploaded.ok, uploaded.text
        reply = chat.say("train big")
        final = chat.wait_for(reply.data["job_id"], timeout=1800)
        notified = time.time()
        assert final is not None and final.type == "TrainingFinished", final
        job = chat.services.jobs.get(reply.data["job_id"])
        record = chat.services.records.get("console:bench", "big")
        for thread in threading.enumerate():  # the trainer thread still releases its lock: then the home goes
            if thread.name.startswith("train-"):
                thread.join(60)
    phases = {"validate": spent["validate"], "store": stored - start - spent["validate"],
              "queue": job.started_at - stored, "train": spent["recipe"] - spent["export + check"],
              "export + check": spent["export + check"], "save": job.finished_at - job.started_at - spent["recipe"],
              "notify": notified - job.finished_at}
    print(json.dumps({"kind": kind, "bytes": len(data), "total_s": notified - start, "phases": phases,
                      "recipe": job.recipe, "validation_accuracy": record.validation_accuracy,
                      "examples": sum(record.class_counts.values())}))


def main() -> int:
    runs = [run_child("bench.end_to_end", "--child", kind) for kind in ("image", "sentiment")]
    goals = {"image": 60, "sentiment": 180}
    names = list(runs[0]["phases"])
    print(f"Upload to training-finished notification on the console channel, local backend, {os.cpu_count()} cores, "
          "each in a fresh process (cold models and caches).\n")
    print("| dataset | recipe | validation accuracy | " + " | ".join(f"{n} (s)" for n in names)
          + " | total (s) | goal (s) |")
    print("|---|---|---:|" + "---:|" * (len(names) + 2))
    for run in runs:
        label = "10 x 100 images (96 px PNG)" if run["kind"] == "image" else "3 x 1000 texts (CSV)"
        cells = " | ".join(f"{run['phases'][n]:.2f}" for n in names)
        verdict = "met" if run["total_s"] < goals[run["kind"]] else "NOT met"
        print(f"| {label} | {run['recipe']} | {run['validation_accuracy']:.3f} | {cells} | {run['total_s']:.1f} "
              f"| {goals[run['kind']]} ({verdict}) |")
    return 0


if __name__ == "__main__":
    serve(main, {"child": child})
