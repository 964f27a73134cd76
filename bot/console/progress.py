"""Training progress on a terminal: a redrawn bar on a TTY, one line per epoch otherwise."""
from __future__ import annotations

import sys
import threading
from typing import TextIO

from handlers.notify import failed_reply, finished_reply, progress_reply
from platform_core.events import FAILED, FINISHED, PROGRESS, TrainingEvent


def progress_line(event: TrainingEvent) -> str:
    """The progress message a chat shows (handlers.notify), as one terminal line."""
    return progress_reply(event).text


def finished_text(event: TrainingEvent) -> str:
    """The summary a chat receives when training ends (handlers.notify)."""
    return (failed_reply(event) if event.type == FAILED else finished_reply(event, None)).text


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
