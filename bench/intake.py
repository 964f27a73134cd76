"""Intake benchmarks on real data: validate the largest valid zip and CSV; reject a 1 GiB zip bomb; and the
worst-case validation time of hostile archives within the size caps: images that deflate to
almost nothing and decode to millions of pixels, a thousand identical images, and the dearest archives the
work budget still admits.

Run by `make bench` (bench.run). Each figure is the median of several runs in this process; the bomb's peak memory
is measured in a fresh child process (ru_maxrss) so earlier work does not hide it.
"""
from __future__ import annotations

import io
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from platform_core.config import Limits
from platform_core.validation import ValidationReport, images, validate_dataset
from platform_core.validation.budget import WorkBudget
from platform_core.validation.similarity import near_groups
from tools import realdata

REPEATS = 5


largest_zip, largest_csv = realdata.largest_zip, realdata.largest_csv


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


def encoded(img: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def zip_of(image: bytes, count: int, classes: int = 10, ext: str = "png") -> bytes:
    """``count`` copies of one image spread over ``classes`` class folders, deflated as zip tools do."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(count):
            zf.writestr(f"class_{i % classes}/img_{i:04d}.{ext}", image)
    return out.getvalue()


# What a hostile upload can pack into the size caps, cheapest to send and dearest to check per pixel (the worst of
# L, RGB, RGBA, LA, palette, 16-bit PNGs and baseline and progressive JPEGs at 1024, 2048 and 6300 px).
DEAR_KINDS = {
    "RGBA PNG 1024x1024, one colour": lambda: encoded(Image.new("RGBA", (1024, 1024), (10, 20, 30, 128))),
    "RGB PNG 2048x2048, one colour": lambda: encoded(Image.new("RGB", (2048, 2048), (10, 20, 30))),
    "baseline JPEG 6300x6300, one colour": lambda: encoded(Image.new("RGB", (6300, 6300), (10, 20, 30)), "JPEG"),
    "progressive JPEG 1024x1024, one colour": lambda: encoded(Image.new("RGB", (1024, 1024), (10, 20, 30)), "JPEG",
                                                               progressive=True),
}


def once(data: bytes) -> tuple[float, ValidationReport]:
    start = time.perf_counter()
    report = validate_dataset(data, "hostile.zip", Limits())
    return time.perf_counter() - start, report


def first_error(report: ValidationReport) -> str:
    return f"{report.errors[0].code}: {report.errors[0].message}" if report.errors else "valid"


def hostile() -> None:
    """Worst-case validation times of hostile archives within the size caps (one run each: they are slow by design)."""
    limits, budget = Limits(), WorkBudget()
    print(f"hostile archives within the size caps (pixel budget {budget.max_decode_pixels / 1e6:.0f} megapixels, "
          f"clock {budget.max_seconds:g} s; one run each)")
    solid = encoded(Image.new("RGBA", (6300, 6300), (10, 20, 30, 128)))
    bomb = zip_of(solid, limits.max_entries)
    took, report = once(bomb)
    start = time.perf_counter()
    images.decode_and_normalise(solid, limits.max_image_pixels)
    one = time.perf_counter() - start
    print(f"  {limits.max_entries} solid 6300x6300 RGBA PNGs ({len(solid) / 1024:.0f} KB each, zip "
          f"{len(bomb) / 2**20:.1f} MB): answered in {took:.2f} s; decoding one takes {one:.2f} s, so decoding every "
          f"entry would take about {one * limits.max_entries / 60:.0f} min ({one * limits.max_entries / took:.0f}x)")
    print(f"    {first_error(report)}")
    sample = realdata.sample_images(1, 1)
    same = realdata.encode_image(next(iter(sample.values()))[0])
    identical = zip_of(same, limits.max_image_classes * limits.max_images_per_class)
    took, report = once(identical)
    print(f"  {limits.max_image_classes * limits.max_images_per_class} identical 28x28 Fashion-MNIST PNGs: "
          f"answered in {took:.2f} s ({'valid' if report.valid else 'rejected'}, warnings: "
          f"{', '.join(w.code for w in report.warnings)})")
    rng = np.random.default_rng(0)
    look_alikes = [("c", f"c/{i}.png", 0xABCDEF, f"sha{i}", rng.permutation(np.arange(1024) % 256).astype(np.uint8)
                    .tobytes()) for i in range(1000)]
    start = time.perf_counter()
    near_groups(look_alikes)
    print(f"  look-alike check, 1000 pictures with one dHash and one mean grey level but different pixels (its worst "
          f"case): {time.perf_counter() - start:.2f} s")
    worst = 0.0
    for kind, make in DEAR_KINDS.items():
        image = make()
        pixels = images.probe(image, limits.max_image_pixels).decode_pixels
        count = min(budget.max_decode_pixels // pixels,
                    limits.max_image_classes * (limits.max_images_per_class + 1))
        classes = max(2, min(limits.max_image_classes, count // limits.min_images_per_class))
        data = zip_of(image, count, classes, ext="jpg" if "JPEG" in kind else "png")
        took, report = once(data)
        worst = max(worst, took)
        print(f"  the budget's dearest admitted: {count} x {kind} ({count * pixels / 1e6:.0f} megapixels to decode, "
              f"zip {len(data) / 2**20:.2f} MB): {took:.2f} s, {took * 1000 / (count * pixels / 1e6):.1f} ms a "
              f"megapixel; {first_error(report)}")
    print(f"  worst admitted archive: {worst:.2f} s")


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
    hostile()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bomb-child":
        bomb_child(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
