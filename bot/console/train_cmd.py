"""`mlbot train NAME [--wait]`: queue training; with --wait, train here and show progress until it ends."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

from bot.console.progress import ConsoleProgress, finished_text
from bot.wiring import build_services
from handlers.commands import Command
from handlers.chat import dispatch
from platform_core.config import Settings
from platform_core.jobs import JobState, ReplyTo

POLL_S = 0.5


def run_train(settings: Settings, tenant: str, user: str, name: str, *, recipe: str | None, wait: bool,
              as_json: bool, epochs: int | None = None) -> int:
    """Exit 0 when queued (or, with --wait, trained), 1 when refused or failed."""
    args = (name, recipe) if recipe else (name,)
    cmd = Command("train", tenant, user, args, admin=True)  # the console's user runs this machine
    if not wait:
        reply = dispatch(cmd, build_services(settings), reply_to=ReplyTo("console", user=user))
        _emit(reply.text, reply.data, as_json)
        if reply.ok and not as_json:
            print(f"Follow it with: mlbot status {name}   (or train with --wait to watch)")
        return 0 if reply.ok else 1
    return _train_and_wait(settings, cmd, as_json, epochs)


def _train_and_wait(settings: Settings, cmd: Command, as_json: bool, epochs: int | None) -> int:
    from platform_core.adapters.launchers import ThreadLauncher
    from trainer_ec2.runner import drain
    from trainer_ec2.wiring import build_trainer_context

    overrides = {"epochs": epochs} if epochs else {}
    ctx = build_trainer_context(settings, **overrides)
    services = build_services(settings, launcher=ThreadLauncher(lambda: drain(ctx))
                              if settings.backend == "local" else None)
    progress = ConsoleProgress(cmd.tenant, cmd.args[0].lower(), sys.stderr if as_json else sys.stdout)
    if hasattr(ctx.events, "subscribe"):
        ctx.events.subscribe(progress)
    reply = dispatch(cmd, services, reply_to=ReplyTo("console", user=cmd.user))
    if not reply.ok:
        _emit(reply.text, reply.data, as_json)
        return 1
    if not as_json:
        print(reply.text)
    job = _wait_for(services, reply.data["job_id"], progress)
    record = services.records.get(cmd.tenant, job.name)
    succeeded = job.state == JobState.SUCCEEDED.value
    if as_json:
        print(json.dumps({"job": job.as_dict(), "dataset": record.as_dict() if record else None},
                         indent=2, sort_keys=True, default=str))
    elif progress.final is not None:
        print(finished_text(progress.final))
    else:  # trained by another process: only the record tells
        print(f"Training '{job.name}' {job.state}: " + (job.error or f"validation accuracy "
              f"{(record.validation_accuracy or 0) * 100:.1f}%"))
    return 0 if succeeded else 1


def _wait_for(services, job_id: str, progress: ConsoleProgress):
    while True:
        job = services.jobs.get(job_id)
        if job is not None and job.state in (JobState.SUCCEEDED.value, JobState.FAILED.value):
            progress.done.wait(timeout=2)  # let the final event print
            return replace(job)
        time.sleep(POLL_S)


def _emit(text: str, data: dict, as_json: bool) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str) if as_json else text)
