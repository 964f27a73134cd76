"""Intake benchmarks on real data: validate the largest valid zip and CSV; reject a 1 GiB zip bomb.

Run by `make bench` (bench.run). Each figure is the median of several runs in this process; the bomb's peak memory
is measured in a fresh child process (ru_maxrss) so earlier work does not hide it.
"""
from __future__ import annotations

import csv
import io
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

from platform_core.config import Limits
from platform_core.validation import validate_dataset
from tools import realdata

REPEATS = 5


def largest_zip() -> bytes:
    """10 classes x 100 real Fashion-MNIST images, upscaled to 96 px as phone-sized thumbnails would be."""
    return realdata.build_image_zip(10, 100, size=96)


def largest_csv() -> bytes:
    """3 x 1000 real human-rated snippets: movie reviews, with NYT editorial snippets topping up neutral."""
    rng = random.Random(0)
    movie = realdata.load_movie_reviews(neutral=True)
    nyt = [(t, r) for t, r in realdata.load_rated_snippets("nytEditorialSnippets") if -0.5 < r < 0.5]
    rows = []
    for label in ("positive", "negative"):
        rows += [(t, label) for t in rng.sample([t for t, lab in movie if lab == label], 1000)]
    neutral = [t for t, lab in movie if lab == "neutral"]
    neutral += rng.sample([t for t, _ in nyt], 1000 - len(neutral))
    rows += [(t, "neutral") for t in neutral]
    rng.shuffle(rows)
    out = io.StringIO()
    csv.writer(out).writerows([("text", "label"), *rows])
    return out.getvalue().encode("utf-8")


def bomb_zip(path: Path, gib: float = 1.0) -> None:
    """One entry of zeros that expands to ``gib`` GiB, written in a stream (about 1 MB on disk)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("cats/cat.png", "w", force_zip64=True) as entry:
            for _ in range(int(gib * 1024)):
                entry.write(chunk)


def timed(data: bytes, name: str) -> tuple[float, float, object]:
    """Median seconds and peak traced MiB of validating ``data``."""
    times, peak, report = [], 0.0, None
    for i in range(REPEATS):
        if i == 0:
            tracemalloc.start()
        start = time.perf_counter()
        report = validate_dataset(data, name, Limits())
        times.append(time.perf_counter() - start)
        if i == 0:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    return statistics.median(times[1:] or times), peak, report


def bomb_child(path: str) -> None:
    """Runs in a fresh process: validate the bomb, print seconds, errors and peak RSS."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    report = validate_dataset(Path(path), "bomb.zip", Limits())
    took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{took:.3f} {before:.0f} {peak:.0f} {report.valid} {report.errors[0].message if report.errors else ''}")


def main() -> int:
    zip_data, csv_data = largest_zip(), largest_csv()
    z_time, z_peak, z_report = timed(zip_data, "fashion_10x100.zip")
    c_time, c_peak, c_report = timed(csv_data, "vader_3x1000.csv")
    assert z_report.valid and c_report.valid, (z_report.as_dict()["errors"], c_report.as_dict()["errors"])
    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.zip"
        bomb_zip(bomb)
        size = bomb.stat().st_size
        out = subprocess.run([sys.executable, "-m", "bench.intake", "--bomb-child", str(bomb)],
                             capture_output=True, text=True, check=True).stdout.split(" ", 4)
    b_time, b_before, b_peak, b_valid, b_error = float(out[0]), out[1], out[2], out[3], out[4].strip()
    print("mlbot intake benchmark (median of", REPEATS, "runs; real data)")
    print(f"  zip 10 classes x 100 Fashion-MNIST images ({len(zip_data) / 2**20:.1f} MB): "
          f"{z_time:.2f} s, peak traced {z_peak:.0f} MiB")
    print(f"  CSV 3 classes x 1000 VADER snippets ({len(csv_data) / 2**20:.2f} MB): "
          f"{c_time * 1000:.0f} ms, peak traced {c_peak:.0f} MiB")
    print(f"  1 GiB zip bomb ({size / 2**20:.1f} MB on disk): rejected={b_valid == 'False'} in {b_time:.3f} s, "
          f"process peak RSS {b_peak} MiB (after imports {b_before} MiB)")
    print(f"    reason: {b_error}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bomb-child":
        bomb_child(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
