"""`make bench`: run every benchmark side by side on this machine and write bench/RESULTS.md.

`python -m bench.run intake` (or image, text, robustness, e2e, predict, load, coldstart, fleet) runs a subset. Each suite runs in its own process, with
jemalloc preloaded when installed (it doubles MobileNetV2 throughput on this machine).
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

SUITES = {
    "intake": ("Intake: validation on real data", "bench.intake"),
    "image": ("Image training: fast against seed (10 classes x 100 Fashion-MNIST)", "bench.image_training"),
    "text": ("Text training: e5, encoder and seed on three VADER corpora, and the largest CSV", "bench.text_training"),
    "robustness": ("Image robustness: resized, recompressed and framed pictures", "bench.image_robustness"),
    "e2e": ("End to end: upload to notification, the largest datasets", "bench.end_to_end"),
    "predict": ("Prediction: the Lambda handler (onnxruntime) against torch eager", "bench.predict"),
    "load": ("Load: concurrent Slack requests and Telegram updates on the webhook entry points", "bench.load"),
    "coldstart": ("Cold start: the Slack acknowledgement path", "bench.coldstart"),
    "fleet": ("Fleet: scaling and fairness simulation (SQS + Auto Scaling)", "bench.fleet"),
}
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
RESULTS = Path(__file__).with_name("RESULTS.md")


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if JEMALLOC.exists():
        env.update(LD_PRELOAD=str(JEMALLOC), MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1")
    return env


def run_suite(module: str) -> tuple[int, str]:
    """Run one benchmark module, echoing its output as it comes."""
    proc = subprocess.Popen([sys.executable, "-m", module], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=_env())
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    return proc.wait(), "".join(lines)


def main(argv: list[str]) -> int:
    chosen = argv or list(SUITES)
    unknown = [c for c in chosen if c not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}")
        return 2
    sections, status = {}, 0
    for key in chosen:
        title, module = SUITES[key]
        print(f"== {title}")
        code, output = run_suite(module)
        status |= code
        sections[title] = (f"## {title}\n\n`python -m {module}` ({datetime.date.today()})" + (" (FAILED)" if code else "")
                           + f"\n\n{output.strip()}\n")
    header = (f"# Benchmark results\n\nWritten by `make bench` on {datetime.date.today()}: {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, jemalloc {'preloaded' if JEMALLOC.exists() else 'absent'}. "
              "Figures are measured side by side in one run; they guide design and are not test thresholds.\n")
    if chosen != list(SUITES) and RESULTS.exists():  # a subset replaces its own sections, keeps the others
        kept = {}
        for part in RESULTS.read_text().split("\n## ")[1:]:
            kept[part.split("\n", 1)[0].strip()] = "## " + part.rstrip() + "\n"
        sections = {title: sections.get(title, kept.get(title)) for title, _ in SUITES.values()
                    if title in sections or title in kept}
    RESULTS.write_text(header + "\n" + "\n".join(s for s in sections.values() if s))
    print(f"wrote {RESULTS}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
