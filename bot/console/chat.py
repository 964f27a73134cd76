"""The console channel: `mlbot chat` (a REPL) and the demo's scripted chat, on the local backend.

Lines are the chat commands of handlers.chat; a file is attached with ``--file PATH`` anywhere in the line.
Training runs in a thread of this process, so its notifications (the progress message, then the summary
with the confusion matrix, saved under $MLBOT_HOME/outbox/) print here as they arrive.
"""
from __future__ import annotations

import shlex
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from bot.wiring import build_services
from handlers.chat import dispatch, parse
from handlers.commands import Attachment, Command, Reply
from handlers.notify import Notifier
from platform_core.backend import backend_for
from platform_core.config import Settings
from platform_core.events import FAILED, FINISHED, TrainingEvent
from platform_core.jobs import ReplyTo

PREFIX = "  mlbot: "


class ConsoleSender:
    """ChatSender for a terminal: a progress message is redrawn in place on a TTY, printed line by line
    otherwise; images are saved to the outbox and named."""

    def __init__(self, out: TextIO, outbox: Path, *, prefix: str = PREFIX) -> None:
        self.out, self.outbox, self.prefix = out, outbox, prefix
        self.tty = out.isatty()
        self._lock = threading.Lock()
        self._count = 0
        self._open: str | None = None  # a progress line being redrawn

    def send(self, reply_to: ReplyTo, reply: Reply) -> str:
        with self._lock:
            self._close_line()
            self._count += 1
            lines = reply.text.splitlines() or [""]
            if reply.image:
                self.outbox.mkdir(parents=True, exist_ok=True)
                path = self.outbox / Path(reply.image_name).name
                path.write_bytes(reply.image)
                lines.append(f"(image: {path})")
            if reply.file:
                self.outbox.mkdir(parents=True, exist_ok=True)
                path = self.outbox / Path(reply.file[0]).name
                path.write_bytes(reply.file[1])
                lines.append(f"(file: {path})")
            offered = "Next: " + " | ".join(b.command for b in reply.buttons)
            if reply.buttons and offered not in lines:  # the text may already say it
                lines.append(offered)
            self.out.write("".join(f"{self.prefix}{line}\n" for line in lines))
            self.out.flush()
            return str(self._count)

    def edit(self, reply_to: ReplyTo, ref: str, reply: Reply) -> None:
        with self._lock:
            line = self.prefix + reply.text.replace("\n", " ")
            if self.tty:
                self.out.write("\r" + line + "\x1b[K")
                self._open = ref
            else:
                self.out.write(line + "\n")
            self.out.flush()

    def _close_line(self) -> None:
        if self._open is not None:
            self.out.write("\n")
            self._open = None


def split_file(line: str) -> tuple[str, Path | None]:
    """The line without ``--file PATH``, and the path."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if "--file" in words:
        i = words.index("--file")
        if i + 1 < len(words):
            return " ".join(words[:i] + words[i + 2:]), Path(words[i + 1]).expanduser()
        return " ".join(words[:i]), None
    return " ".join(words), None


class ConsoleChat:
    """One console conversation over the local backend, with training in this process."""

    def __init__(self, settings: Settings, *, tenant: str, user: str, out: TextIO = sys.stdout) -> None:
        from platform_core.adapters.launchers import ThreadLauncher
        from trainer_ec2.runner import drain
        from trainer_ec2.wiring import build_trainer_context

        settings = replace(settings, backend="local")
        self.tenant, self.user, self.out, self.settings = tenant, user, out, settings
        self.backend = backend = backend_for(settings)
        self.ctx = build_trainer_context(settings, backend=backend)
        self.services = build_services(settings, launcher=ThreadLauncher(lambda: drain(self.ctx)), backend=backend)
        self.sender = ConsoleSender(out, settings.home / "outbox")
        notifier = Notifier({"console": self.sender}, backend.notifications, backend.blobs, backend.idempotency)
        self.ctx.events.subscribe(notifier)
        self.ctx.events.subscribe(self._track)
        self._finals: dict[str, TrainingEvent] = {}
        self._changed = threading.Condition()

    def _track(self, event: TrainingEvent) -> None:
        if event.type in (FINISHED, FAILED):
            with self._changed:
                self._finals[event.job_id] = event
                self._changed.notify_all()

    def say(self, line: str, *, user: str | None = None) -> Reply:
        """Run one typed line and print the reply."""
        text, path = split_file(line)
        verb, args = parse(text)
        if path is not None and not path.is_file():
            reply = Reply(f"There is no file at {path}.", ok=False)
        else:
            attachment = Attachment(path.name, path) if path is not None else None
            # the console's own user runs this machine: an admin of its chat; a user named for a test is not
            cmd = Command(verb, self.tenant, user or self.user, args, attachment, admin=user in (None, self.user))
            reply = dispatch(cmd, self.services, reply_to=ReplyTo("console", user=cmd.user))
        self.sender.send({}, reply)
        return reply

    def wait_for(self, job_id: str, timeout: float) -> TrainingEvent | None:
        """The job's final event once its notification has printed, or None after ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: job_id in self._finals, timeout=timeout)
            return self._finals.get(job_id)


def run_chat(settings: Settings, *, tenant: str, user: str, stdin: TextIO = sys.stdin,
             out: TextIO = sys.stdout) -> int:
    """`mlbot chat`: read lines until 'quit' or end of input."""
    chat = ConsoleChat(settings, tenant=tenant, user=user, out=out)
    interactive = stdin.isatty()
    out.write(f"mlbot chat as {tenant} (data in {settings.home}). Type 'help'; 'quit' leaves.\n")
    while True:
        if interactive:
            out.write(f"{user}> ")
            out.flush()
        line = stdin.readline()
        if not line or line.strip().lower() in ("quit", "exit"):
            break
        if line.strip():
            chat.say(line)
    unfinished = chat.services.jobs.running() + chat.services.jobs.queued() if chat.services.jobs else []
    if unfinished:
        out.write("Training is still running here; waiting for it to finish (Ctrl-C leaves now).\n")
        for job in unfinished:
            chat.wait_for(job.job_id, timeout=3600)
    return 0
