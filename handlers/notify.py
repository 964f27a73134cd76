"""Training notifications: what the chat that asked is told, and the notifier that tells it.

The trainer publishes TrainingProgress / TrainingFinished / TrainingFailed events carrying the job's
``reply_to`` (which channel, which chat or thread). The notifier turns each into a Reply and hands it to
that channel's sender: progress edits one message per job (with a bar and the time left), the end posts
a summary with the confusion matrix and then the mistakes album (the held-out examples it got wrong), or
the failure's reason. A delivery failure is logged and recorded
in the notification log; it never reaches the job. The final notice is posted once per job and chat,
whatever arrives twice (an SNS retry, two notifiers at once, a crash between posting and recording it):
it runs under Idempotency.once, keyed by job and destination. A chat joins a job's watchers with one
conditional write (NotificationLog.add), so two chats joining at once are both told.
"""
from __future__ import annotations

import logging
from typing import Mapping

from handlers.commands import Button, Reply
from handlers.replies import format_accuracy
from platform_core.errors import MlbotError
from platform_core.events import FAILED, FINISHED, PROGRESS, TrainingEvent
from platform_core.jobs import ReplyTo
from platform_core.ports import BlobStore, ChatSender, Idempotency, NotificationLog

log = logging.getLogger(__name__)
BAR = 12


def duration(seconds: float | None) -> str:
    """'45 s', '3 min 5 s', '1 h 2 min'."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def progress_bar(done: int, total: int, width: int = BAR) -> str:
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def progress_reply(event: TrainingEvent) -> Reply:
    p = event.payload
    epoch, total = int(p.get("epoch", 0)), int(p.get("total", 0))
    if p.get("texts_to_encode"):  # a text recipe's first step: its sentence embeddings
        parts = [f"Training '{event.name}' {progress_bar(epoch, total)} encoding texts "
                 f"{int(p.get('encoded_texts', 0)):,}/{int(p['texts_to_encode']):,}"]
    else:
        parts = [f"Training '{event.name}' {progress_bar(epoch, total)} epoch {epoch}/{total}"]
    if p.get("validation_accuracy") is not None:
        parts.append(f"validation accuracy {format_accuracy(p['validation_accuracy'])}")
    if epoch < total and p.get("eta_s") is not None:
        parts.append(f"about {duration(p['eta_s'])} left")
    return Reply(", ".join(parts), data={"event": event.type, **p})


def finished_reply(event: TrainingEvent, blobs: BlobStore | None) -> Reply:
    p = event.payload
    lines = [f"Training '{event.name}' finished: validation accuracy {format_accuracy(p.get('validation_accuracy'))}"
             f" (train {format_accuracy(p.get('train_accuracy'))}), {p.get('recipe', '')} recipe, "
             f"{duration(p.get('duration_s'))}, model version {p.get('model_version')}."]
    per_class = p.get("per_class") or {}
    if per_class:
        lines.append("Per class, precision / recall: " + "; ".join(
            f"{c} {format_accuracy(v.get('precision'))} / {format_accuracy(v.get('recall'))}"
            for c, v in per_class.items()))
    lines.append(f"Try it: predict {event.name} " + ("some text" if p.get("kind") == "sentiment" else "(with an image)"))
    image = None
    if blobs is not None and p.get("confusion_png_key"):
        try:
            image = blobs.get(p["confusion_png_key"])
        except MlbotError:
            log.warning("confusion matrix missing for job %s", event.job_id)
    return Reply("\n".join(lines), data={"event": event.type, **p}, image=image,
                 image_name=f"{event.name}-confusion-matrix.png",
                 buttons=(Button(f"Status of {event.name}", f"status {event.name}"),))


def mistakes_reply(event: TrainingEvent, blobs: BlobStore | None) -> Reply | None:
    """The validation examples the new model got wrong, most confident first (None when it got none wrong)."""
    missed = event.payload.get("mistakes") or []
    if not missed:
        return None
    lines = [f"Where '{event.name}' went wrong on held-out examples (true -> predicted):"]
    for m in missed:
        shown = str(m.get("input", "")).rsplit("/", 1)[-1] if event.payload.get("kind") != "sentiment" \
            else '"' + " ".join(str(m.get("input", "")).split())[:120] + '"'
        lines.append(f"- {m['true']} -> {m['predicted']} ({float(m['confidence']) * 100:.0f}%): {shown}")
    image = None
    if blobs is not None and event.payload.get("mistakes_png_key"):
        try:
            image = blobs.get(event.payload["mistakes_png_key"])
        except MlbotError:
            log.warning("mistakes album missing for job %s", event.job_id)
    return Reply("\n".join(lines), data={"mistakes": missed}, image=image,
                 image_name=f"{event.name}-mistakes.png")


def failed_reply(event: TrainingEvent) -> Reply:
    reason = event.payload.get("reason") or "the trainer stopped unexpectedly"
    return Reply(f"Training '{event.name}' failed: {reason}. The last good model, if any, is still in use; "
                 f"fix the data and upload it again, or try: train {event.name}", ok=False,
                 data={"event": event.type, **event.payload})


WATCHER = "watcher."  # a note per chat that joined: watcher.<destination key> -> its ReplyTo


def watchers(log_: NotificationLog, job_id: str) -> list[ReplyTo]:
    """The chats that joined the job after it was queued, as the notification log keeps them (an older
    log's ``watchers`` list included)."""
    notes = log_.get(job_id)
    found = [*(notes.get("watchers") or []), *(v for k, v in sorted(notes.items()) if k.startswith(WATCHER))]
    return [w for w in (ReplyTo.from_dict(d) for d in found) if w]


def watch(log_: NotificationLog, job_id: str, reply_to: ReplyTo) -> bool:
    """Add a chat that joined the job to the ones told about it (one conditional write); False if it is told
    already."""
    if any(w.key == reply_to.key for w in watchers(log_, job_id)):
        return False
    return log_.add(job_id, WATCHER + reply_to.key, reply_to.as_dict())


class Notifier:
    """Subscriber to training events: renders each and sends it to the chat in its ``reply_to`` and to every
    chat that joined the job later (``watchers`` in the notification log), each with its own progress message."""

    def __init__(self, senders: Mapping[str, ChatSender], log_: NotificationLog, blobs: BlobStore | None,
                 once: Idempotency) -> None:
        self.senders, self.log, self.blobs, self.once = dict(senders), log_, blobs, once

    def __call__(self, event: TrainingEvent) -> None:
        try:
            joined = watchers(self.log, event.job_id)
        except Exception:
            log.exception("could not read who else to tell about job %s", event.job_id)
            joined = []
        targets: dict[str, ReplyTo] = {}
        for target in ([event.reply_to] if event.reply_to else []) + joined:
            targets.setdefault(target.key, target)  # one chat is told once, however it joined
        for target in targets.values():
            self._tell(target, event)

    def _tell(self, target: ReplyTo, event: TrainingEvent) -> None:
        channel = target.channel
        sender = self.senders.get(channel)
        if sender is None:
            if channel:
                log.warning("no sender for channel %r (job %s)", channel, event.job_id)
            return
        try:
            self._deliver(sender, target, event)
        except Exception as exc:  # rate limits, a bot removed from the chat, an outage: never the job's problem
            log.exception("notification %s for job %s failed", event.type, event.job_id)
            try:
                self.log.update(event.job_id, last_error=f"{event.type}: {type(exc).__name__}: {exc}"[:500])
            except Exception:
                log.exception("could not record the failed notification of job %s", event.job_id)

    def _deliver(self, sender: ChatSender, target: ReplyTo, event: TrainingEvent) -> None:
        notes = self.log.get(event.job_id)
        ref_key, final_key = f"progress_ref.{target.key}", f"final_sent.{target.key}"
        if event.type == PROGRESS:
            if notes.get(final_key):
                return  # a late progress event after the summary
            reply = progress_reply(event)
            ref = notes.get(ref_key)
            if ref:
                sender.edit(target, ref, reply)
            else:
                ref = sender.send(target, reply)
            self.log.update(event.job_id, **{ref_key: ref, "progress_epoch": event.payload.get("epoch")})
            return
        if event.type not in (FINISHED, FAILED) or notes.get(final_key):
            return

        def final() -> None:  # once per job and chat; a failure frees it for a retry of the event
            if notes.get(ref_key):
                done = "finished" if event.type == FINISHED else "stopped"
                try:
                    sender.edit(target, notes[ref_key], Reply(f"Training '{event.name}' {progress_bar(1, 1)} {done}"))
                except Exception:
                    log.warning("could not close the progress message of job %s", event.job_id)
            sender.send(target, finished_reply(event, self.blobs) if event.type == FINISHED else failed_reply(event))
            try:  # posted: from here on nothing may free the key (a retry would post it again)
                self.log.update(event.job_id, **{final_key: event.type})  # late progress events stay quiet
            except Exception:
                log.exception("could not record the final notice of job %s (it was sent)", event.job_id)
        if not self.once.once(f"notice:{event.job_id}:{target.key}", final):
            log.info("the final notice of job %s to %s was sent already", event.job_id, target.key)
            return
        album = mistakes_reply(event, self.blobs) if event.type == FINISHED else None
        if album is not None:  # best effort, after the summary: never the reason a summary is posted twice
            sender.send(target, album)
