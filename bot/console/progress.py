"""Training progress on a terminal: a redrawn bar on a TTY, one line per epoch otherwise."""
from __future__ import annotations

import sys
import threading
from typing import TextIO

from platform_core.events import FAILED, FINISHED, PROGRESS, TrainingEvent

WIDTH = 24


def progress_line(event: TrainingEvent) -> str:
    """'fashion [#####.....] epoch 3/10  loss 0.41  val 91.2%  ~12 s left'."""
    p = event.payload
    done = WIDTH * p["epoch"] // max(p["total"], 1)
    bar = "#" * done + "." * (WIDTH - done)
    parts = [f"{event.name} [{bar}] epoch {p['epoch']}/{p['total']}"]
    if p.get("train_loss") is not None:
        parts.append(f"loss {p['train_loss']:.3f}")
    if p.get("validation_accuracy") is not None:
        parts.append(f"val {p['validation_accuracy'] * 100:.1f}%")
    if p.get("eta_s") is not None and p["epoch"] < p["total"]:
        parts.append(f"~{p['eta_s']:.0f} s left")
    return "  ".join(parts)


def finished_text(event: TrainingEvent) -> str:
    """The summary a user reads when training ends."""
    p = event.payload
    if event.type == FAILED:
        return f"Training '{event.name}' failed: {p['reason']}."
    lines = [f"Trained '{event.name}' (model version {p['model_version']}, {p['recipe']} recipe) "
             f"in {p['duration_s']:.0f} s: train accuracy {p['train_accuracy'] * 100:.1f}%, "
             f"validation accuracy {p['validation_accuracy'] * 100:.1f}% on {p['n_validation']} held-out examples."]
    for cls, figures in p["per_class"].items():
        lines.append(f"  {cls}: precision {figures['precision'] * 100:.0f}%, recall {figures['recall'] * 100:.0f}%")
    return "\n".join(lines)


class ConsoleProgress:
    """An event subscriber for one dataset that draws progress and remembers the final event."""

    def __init__(self, tenant: str, name: str, out: TextIO = sys.stdout, *, prefix: str = "") -> None:
        self.tenant, self.name, self.out, self.prefix = tenant, name, out, prefix
        self.tty = out.isatty()
        self.final: TrainingEvent | None = None
        self.done = threading.Event()

    def __call__(self, event: TrainingEvent) -> None:
        if (event.tenant, event.name) != (self.tenant, self.name):
            return
        if event.type == PROGRESS:
            line = self.prefix + progress_line(event)
            self.out.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        elif event.type in (FINISHED, FAILED):
            if self.tty:
                self.out.write("\n")
            self.final = event
            self.done.set()
        self.out.flush()
