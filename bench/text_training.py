"""Text training benchmark: the `encoder` recipe against the `seed` LSTM on 2 classes x 500 real VADER reviews.

Run by `make bench` (bench.run text), or alone with `python -m bench.text_training`. Each recipe runs in a fresh
child process with its full defaults (seed: 10 epochs), so its peak RSS (ru_maxrss) is its own and the encoder
pays its cold model load. CPU time is printed beside wall time because it moves less when the machine is shared. Issue 3's target: encoder validation accuracy at least 10 points above seed.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

PER_CLASS = 500
RECIPES = ("encoder", "seed")


def child(recipe: str) -> None:
    """Runs in a fresh process: train one recipe on the benchmark CSV and print its figures as JSON."""
    from platform_core.config import Limits
    from platform_core.validation import validate_dataset
    from tools import realdata
    from trainer_ec2.config import TrainConfig
    from trainer_ec2.text_training import train_sentiment_classifier

    data = validate_dataset(realdata.build_sentiment_csv(PER_CLASS), "vader_2x500.csv", Limits()).normalised
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train_sentiment_classifier(data, TrainConfig(recipe=recipe))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    m = result.metrics
    print(json.dumps({"recipe": recipe, "wall_s": wall, "cpu_s": cpu, "train_accuracy": m["train_accuracy"],
                      "validation_accuracy": m["validation_accuracy"], "epochs": len(m["history"]),
                      "n_train": m["n_train"], "n_validation": m["n_validation"],
                      "onnx_mb": len(result.onnx_model) / 1e6, "onnx_diff": m["onnx_max_probability_difference"],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(recipe: str) -> dict:
    """One recipe's figures, from a child process."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "bench.text_training", "--child", recipe],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{recipe} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    load = os.getloadavg()[0]
    rows = [run_child(recipe) for recipe in RECIPES]
    first = rows[0]
    print(f"VADER movie reviews, 2 classes x {PER_CLASS} ({first['n_train']} train / {first['n_validation']} "
          f"validation, stratified 70:30, seed 0); {os.cpu_count()} cores, load average {load:.1f} at start.\n")
    print("| recipe | epochs | wall time (s) | CPU time (s) | train accuracy | validation accuracy | peak RSS (MiB) "
          "| ONNX (MB) | max ONNX-torch diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['epochs']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['train_accuracy']:.3f} "
              f"| {r['validation_accuracy']:.3f} | {r['peak_rss_mib']:.0f} | {r['onnx_mb']:.1f} | {r['onnx_diff']:.1e} |")
    by = {r["recipe"]: r for r in rows}
    gain = 100 * (by["encoder"]["validation_accuracy"] - by["seed"]["validation_accuracy"])
    print(f"\nencoder - seed validation accuracy: {gain:+.1f} points (target: at least +10); "
          f"wall time ratio encoder/seed {by['encoder']['wall_s'] / by['seed']['wall_s']:.2f}.")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
