"""Feedback on predictions, and `retrain NAME` with the corrected examples.

Every single prediction is kept for a while as a pending input (``feedback-pending/``, expired by the
bucket after a week) and its reply carries buttons: "Right" and "No, it's <class>" for the runner-ups.
Pressing one sends `feedback NAME ID LABEL`, which files the input as a candidate example of LABEL
(``feedback/<tenant>/<name>/<label>/<id>``). `retrain NAME` adds the candidates to the dataset (within the
dataset limits: a class never grows past its maximum), stores that as the dataset's next version through
the same validation as an upload, and queues training; the candidates used are then removed.
"""
from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter

from handlers.datasets import named_record
from handlers.commands import Attachment, Button, Command, Reply
from handlers.replies import error_reply
from handlers.permissions import require_owner_or_admin
from handlers.services import Services
from handlers.train import handle_train
from handlers.upload import upload
from platform_core.errors import BlobNotFound, MlbotError, UsageError
from platform_core.jobs import ReplyTo
from platform_core.records import DatasetRecord, kept_prefix, pending_prefix

MAX_CORRECTIONS_SHOWN = 2


def pending_key(tenant: str, name: str, prediction_id: str) -> str:
    return pending_prefix(tenant, name) + prediction_id


def remember(services: Services, tenant: str, name: str, data: bytes) -> str:
    """Keep a predicted input for feedback; returns its id."""
    prediction_id = services.new_id()
    services.blobs.put(pending_key(tenant, name, prediction_id), data)
    return prediction_id


def buttons(name: str, prediction_id: str, answer: dict) -> tuple[Button, ...]:
    """"Right" for the label given, "No, it's X" for the next likeliest classes."""
    label = answer["label"]
    choices = [Button(f"Right: {label}", f"feedback {name} {prediction_id} {label}")]
    choices += [Button(f"No, it's {other}", f"feedback {name} {prediction_id} {other}")
                for other, _ in answer["top"][1:1 + MAX_CORRECTIONS_SHOWN]]
    return tuple(choices)


def handle_feedback(cmd: Command, services: Services) -> Reply:
    """`feedback NAME ID LABEL`: file the predicted input under LABEL as a candidate example."""
    record = named_record(cmd, services, "feedback NAME PREDICTION-ID LABEL (sent by the buttons under a prediction)")
    if len(cmd.args) < 3:
        raise UsageError("feedback NAME PREDICTION-ID LABEL (sent by the buttons under a prediction)")
    prediction_id, label = cmd.args[1], " ".join(cmd.args[2:])
    if label not in record.class_counts:
        raise UsageError(f"feedback {record.name} ID LABEL, LABEL one of {', '.join(sorted(record.class_counts))}")
    if not prediction_id.isalnum():
        raise UsageError("feedback NAME PREDICTION-ID LABEL")
    source = pending_key(cmd.tenant, record.name, prediction_id)
    target = f"{kept_prefix(cmd.tenant, record.name)}{label}/{prediction_id}"
    try:
        data = services.blobs.get(source)
    except BlobNotFound:
        if any(k.endswith(f"/{prediction_id}") for k in services.blobs.list(kept_prefix(cmd.tenant, record.name))):
            return Reply("Already noted, thanks.", data={"label": label})
        raise UsageError("that prediction is too old to give feedback on (inputs are kept for a week)") from None
    services.blobs.put(target, data)
    services.blobs.delete(source)
    waiting = len(services.blobs.list(kept_prefix(cmd.tenant, record.name)))
    return Reply(f"Thanks: kept as an example of '{label}' ({waiting} waiting). Add them to the dataset and train "
                 f"again with: retrain {record.name}", data={"label": label, "waiting": waiting},
                 buttons=(Button(f"Retrain {record.name}", f"retrain {record.name}"),))


def handle_forget(cmd: Command, services: Services) -> Reply:
    """`forget NAME`: delete every kept prediction input of the dataset (pending and waiting examples)."""
    record = named_record(cmd, services, "forget NAME")
    require_owner_or_admin(cmd, record, "forget")
    keys = services.blobs.list(pending_prefix(cmd.tenant, record.name)) + \
        services.blobs.list(kept_prefix(cmd.tenant, record.name))
    for key in keys:
        services.blobs.delete(key)
    return Reply(f"Forgot {len(keys)} kept input(s) of '{record.name}', with every stored copy of them: no copy is "
                 "kept of anything you sent for prediction. The dataset and its models are unchanged.",
                 data={"forgotten": len(keys)})


def handle_retrain(cmd: Command, services: Services, *, reply_to: ReplyTo | None = None) -> Reply:
    """`retrain NAME`: the dataset plus its candidate examples becomes the next version, then trains."""
    record = named_record(cmd, services, "retrain NAME")
    require_owner_or_admin(cmd, record, "retrain")
    keys = services.blobs.list(kept_prefix(cmd.tenant, record.name))
    if not keys:
        raise UsageError(f"retrain {record.name} after giving feedback on some predictions (no examples "
                         "are waiting); or just: train " + record.name)
    merged, added, skipped = _merge(record, keys, services)
    if not added:
        limit = services.limits.max_images_per_class if record.kind == "image" else services.limits.max_rows_per_class
        raise UsageError(f"retrain {record.name} once its classes have room: the {len(skipped)} waiting "
                         f"example(s) belong to classes already at the maximum of {limit}")
    stored, _ = upload(Command("upload", cmd.tenant, record.owner, (record.name,),
                               Attachment(_filename(record), merged)), services)
    for key in added:
        services.blobs.delete(key)
    counts = Counter(key.split("/")[-2] for key in added)
    note = f"Added {sum(counts.values())} example(s) ({', '.join(f'{c} {n}' for c, n in sorted(counts.items()))}) " \
           f"to '{record.name}', now dataset version {stored.dataset_version}"
    note += f"; {len(skipped)} left waiting (their classes are full)." if skipped else "."
    try:  # the examples are added whatever happens next: say so beside any refusal to train
        trained = handle_train(Command("train", cmd.tenant, cmd.user, (record.name,), admin=cmd.admin), services, reply_to=reply_to)
    except MlbotError as exc:
        trained = error_reply(exc)
    return Reply(f"{note}\n{trained.text}", ok=trained.ok, data={"added": dict(counts), **trained.data})


def _filename(record: DatasetRecord) -> str:
    return "dataset.zip" if record.kind == "image" else "dataset.csv"


def _merge(record: DatasetRecord, keys: list[str], services: Services) -> tuple[bytes, list[str], list[str]]:
    """The stored dataset with the candidates added, up to each class's maximum."""
    stored = services.blobs.get(record.dataset_path)
    room = Counter({cls: (services.limits.max_images_per_class if record.kind == "image"
                          else services.limits.max_rows_per_class) - n for cls, n in record.class_counts.items()})
    added, skipped = [], []
    for key in sorted(keys):
        label = key.split("/")[-2]
        (added if room[label] > 0 else skipped).append(key)
        room[label] -= 1
    if record.kind == "image":
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(stored)) as old, zipfile.ZipFile(out, "w") as new:
            for info in old.infolist():
                new.writestr(info.filename, old.read(info))
            for key in added:
                label, prediction_id = key.split("/")[-2:]
                new.writestr(f"{label}/feedback-{prediction_id}.img", services.blobs.get(key))
        return out.getvalue(), added, skipped
    text = io.StringIO()
    text.write(stored.decode("utf-8"))
    if not text.getvalue().endswith("\n"):
        text.write("\n")
    writer = csv.writer(text, lineterminator="\n")
    for key in added:
        writer.writerow([services.blobs.get(key).decode("utf-8"), key.split("/")[-2]])
    return text.getvalue().encode("utf-8"), added, skipped
