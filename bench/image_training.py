"""Image training benchmark: the `fast` recipe against `seed` on 10 classes x 100 real Fashion-MNIST images.

Each run is its own child process so that its peak RSS (ru_maxrss) is its own; the wall time is that of
``train_image_classifier`` alone (zip building, imports and start-up excluded: the child preloads as a
trainer does when it starts, trainer_ec2.runner.preload). fast runs three times, once before seed and twice
after, and its median run is shown. Prints a markdown table. ``--jemalloc`` preloads jemalloc in the
children (DESIGN.md: about 2x for MobileNetV2; ``make bench`` already runs this module with it preloaded,
and the children inherit that); ``--seed-epochs N`` shortens the seed run for a quick look (the table says
so).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Sequence

from bench.child import run_child

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
CLASSES, PER_CLASS = 10, 100


def child(recipe: str, epochs: int | None) -> None:
    """Runs in a fresh process: build the dataset, train once, print one JSON line of figures."""
    from platform_core.config import Limits
    from platform_core.validation import validate_dataset
    from tools import realdata
    from trainer_ec2.config import TrainConfig
    from trainer_ec2.image_training import train_image_classifier
    from trainer_ec2.runner import preload

    preload()  # as a trainer does when it starts: no job pays for the imports
    report = validate_dataset(realdata.build_image_zip(CLASSES, PER_CLASS), "fashion.zip", Limits())
    assert report.valid and report.normalised, report.as_dict()["errors"]
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # imports, data, zip
    start = time.perf_counter()
    result = train_image_classifier(report.normalised, TrainConfig(recipe=recipe, epochs=epochs))
    wall = time.perf_counter() - start
    m = result.metrics
    print(json.dumps({"recipe": recipe, "epochs": len(m["history"]), "wall_s": wall,
                      "validation_accuracy": m["validation_accuracy"], "train_accuracy": m["train_accuracy"],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "baseline_rss_mib": baseline,
                      "onnx_max_probability_difference": m["onnx_max_probability_difference"],
                      "weights_source": m["weights_source"],
                      "allocator": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "glibc"}))


def measure(recipe: str, epochs: int | None, jemalloc: bool) -> dict:
    """One recipe's figures, measured in a child process."""
    env = {"LD_PRELOAD": JEMALLOC, "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"} if jemalloc else {}
    return run_child("bench.image_training", "--child", recipe, *(["--seed-epochs", str(epochs)] if epochs else []),
                     env=env)


def table(rows: list[dict], fast_walls: Sequence[float] = ()) -> str:
    """The markdown table of both runs, with the speed-up and accuracy gap of fast over seed."""
    fast, seed = rows
    lines = [f"Image training, {CLASSES} classes x {PER_CLASS} real Fashion-MNIST images, "
             f"{os.cpu_count()} CPU cores, allocator {fast['allocator']}; "
             f"weights: {fast['weights_source']}",
             "",
             "| recipe | epochs | wall time (s) | validation accuracy | train accuracy | peak RSS (MiB) "
             "| RSS before training (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['recipe']} | {r['epochs']} | {r['wall_s']:.1f} | {r['validation_accuracy']:.3f} | "
              f"{r['train_accuracy']:.3f} | {r['peak_rss_mib']:.0f} | {r['baseline_rss_mib']:.0f} |" for r in rows]
    ratio, gap = seed["wall_s"] / fast["wall_s"], 100 * (fast["validation_accuracy"] - seed["validation_accuracy"])
    lines += ["", f"fast is {ratio:.1f}x faster than seed" + (f" ({seed['epochs']} epochs)" if seed["epochs"] != 10 else "")
              + f"; validation accuracy {gap:+.1f} points (target: 50x at no more than 1 point lower: "
              + ("met" if ratio >= 50 and gap >= -1 else "NOT met") + ")."]
    if len(fast_walls) > 1:
        lines.append(f"fast's row is the median of {len(fast_walls)} runs, before and after seed's: "
                     + ", ".join(f"{w:.1f}" for w in fast_walls) + " s.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run fast, then seed, each in a child process, and print the markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench.image_training", description=__doc__)
    parser.add_argument("--child", choices=["fast", "seed"], help=argparse.SUPPRESS)
    parser.add_argument("--seed-epochs", type=int, default=None, help="seed epochs (default: its 10)")
    parser.add_argument("--jemalloc", action="store_true", help=f"preload {JEMALLOC} in the children")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.seed_epochs if args.child == "seed" else None)
        return 0
    jemalloc = args.jemalloc and os.path.exists(JEMALLOC)
    # fast takes seconds and this machine's timings wander by a second: it runs three times, around seed's run
    fast = [measure("fast", None, jemalloc)]
    seed = measure("seed", args.seed_epochs, jemalloc)
    fast += [measure("fast", None, jemalloc) for _ in range(2)]
    walls = [r["wall_s"] for r in fast]
    print(table([sorted(fast, key=lambda r: r["wall_s"])[1], seed], walls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
