"""Text training benchmark: the sentiment recipes side by side on the three VADER corpora, and the largest CSV.

Run by `make bench` (bench.run text), or alone with `python -m bench.text_training`.

1. Accuracy: movie reviews and Amazon reviews 2 x 300, tweets 3 x 200; 5 seeds, each drawing its own
   sample and its own 70:30 split (the same for every recipe), trained as the product trains
   (train_sentiment_classifier); the mean validation accuracy per corpus, and e5's gain over the encoder
   recipe (issue 18's target: at least +5 points on each).
2. Cost: the largest CSV the intake takes (3 classes x 1000: movie reviews, NYT editorial snippets topping
   up neutral) trained with each recipe in a fresh process (cold model, cold embedding cache): wall and CPU
   time, peak RSS and the stored graph's size.
"""
from __future__ import annotations

import json
import os
import resource
import time

from bench.child import run_child, serve

CORPORA = (("movieReviewSnippets", "movie", 2, 300), ("amazonReviewSnippets", "amazon", 2, 300),
           ("tweets", "tweets", 3, 200))
SPLITS = 5
RECIPES = ("e5", "encoder", "seed")
LARGEST = (1000, 3)  # per class, classes: the intake's largest sentiment dataset (tools.realdata.largest_csv)


def _stored(data: bytes) -> bytes:
    from platform_core.config import Limits
    from platform_core.validation import validate_dataset

    return validate_dataset(data, "bench.csv", Limits()).normalised


def accuracy_child(recipe: str) -> None:
    """Every corpus, every split, one recipe: mean validation accuracy and time per corpus, as JSON."""
    from tools import realdata
    from trainer_ec2.config import TrainConfig
    from trainer_ec2.text_training import train_sentiment_classifier

    out = {}
    for corpus, short, classes, per_class in CORPORA:
        scores, start = [], time.perf_counter()
        for seed in range(SPLITS):
            data = _stored(realdata.build_corpus_csv(corpus, per_class, classes=classes, seed=seed))
            result = train_sentiment_classifier(data, TrainConfig(recipe=recipe, seed=seed))
            scores.append(result.metrics["validation_accuracy"])
        out[short] = {"mean": sum(scores) / len(scores), "scores": scores, "wall_s": time.perf_counter() - start,
                      "n": classes * per_class}
    print(json.dumps(out))


def cost_child(recipe: str) -> None:
    """The largest CSV, one recipe, in this fresh process."""
    from tools import realdata
    from trainer_ec2.config import TrainConfig
    from trainer_ec2.text_training import train_sentiment_classifier

    data = _stored(realdata.largest_csv())
    start, cpu = time.perf_counter(), time.process_time()
    result = train_sentiment_classifier(data, TrainConfig(recipe=recipe))
    print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                      "validation_accuracy": result.metrics["validation_accuracy"],
                      "onnx_mb": len(result.onnx_model) / 1e6,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> int:
    load = os.getloadavg()[0]
    acc = {recipe: run_child("bench.text_training", "--accuracy", recipe) for recipe in RECIPES}
    print(f"VADER corpora, {SPLITS} seeds each (a sample and a 70:30 split per seed, the same for every recipe); "
          f"{os.cpu_count()} cores, load average {load:.1f} at start.\n")
    names = [short for _, short, _, _ in CORPORA]
    sizes = {short: f"{classes} x {per}" for _, short, classes, per in CORPORA}
    print("| recipe | " + " | ".join(f"{n} ({sizes[n]})" for n in names) + " | time for the 15 runs (s) |")
    print("|---|" + "---:|" * (len(names) + 1))
    for recipe in RECIPES:
        cells = " | ".join(f"{acc[recipe][n]['mean']:.3f}" for n in names)
        print(f"| {recipe} | {cells} | {sum(acc[recipe][n]['wall_s'] for n in names):.0f} |")
    gains = {n: 100 * (acc["e5"][n]["mean"] - acc["encoder"][n]["mean"]) for n in names}
    print("\ne5 - encoder, validation accuracy: " + ", ".join(f"{n} {g:+.1f}" for n, g in gains.items())
          + f" points (target: at least +5 on each: {'met' if min(gains.values()) >= 5 else 'NOT met'}).")
    per_class, classes = LARGEST
    print(f"\nThe largest CSV ({classes} classes x {per_class}: movie reviews, NYT editorial snippets topping up "
          "neutral), each recipe in a fresh process "
          "(cold model, cold embedding cache):\n")
    print("| recipe | wall time (s) | CPU time (s) | validation accuracy | peak RSS (MiB) | graph (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for recipe in RECIPES:
        c = run_child("bench.text_training", "--cost", recipe)
        print(f"| {recipe} | {c['wall_s']:.1f} | {c['cpu_s']:.1f} | {c['validation_accuracy']:.3f} "
              f"| {c['peak_rss_mib']:.0f} | {c['onnx_mb']:.3f} |")
    return 0


if __name__ == "__main__":
    serve(main, {"accuracy": accuracy_child, "cost": cost_child})
