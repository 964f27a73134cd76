"""`predict NAME` with an image attached, or `predict NAME some text`; with a zip of images or a CSV of
texts attached, a batch (handlers.batch) answered with a CSV."""
from __future__ import annotations

from pathlib import Path

from handlers.batch import handle_batch, is_batch
from handlers.commands import Command, Reply
from handlers.feedback import buttons, remember
from handlers.services import Services
from platform_core.errors import UsageError
from platform_core.prediction import check_image_size


def handle_predict(cmd: Command, services: Services) -> Reply:
    """Label and confidence from the dataset's latest good model."""
    if services.predictor is None:
        raise UsageError("predict is not available here: no predictor is configured")
    if not cmd.args:
        raise UsageError("predict NAME (with an image attached) or predict NAME some text")
    if cmd.attachment is not None and is_batch(cmd.attachment):
        return handle_batch(cmd, services)
    image = _image(cmd)
    text = " ".join(cmd.args[1:]) or None
    answer = services.predictor.predict(cmd.tenant, cmd.args[0], image=image, text=None if image else text)
    name = answer.get("dataset") or cmd.args[0]
    prediction_id = remember(services, cmd.tenant, name, image if image else (text or "").encode("utf-8"))
    return Reply(answer_text(answer), data={**answer, "prediction_id": prediction_id},
                 buttons=buttons(name, prediction_id, answer))


def answer_text(answer: dict) -> str:
    """'sneaker (97.2% confident, ...)', or, below the model's threshold, an honest 'not sure'."""
    if not answer.get("sure", True):
        likely = " or ".join(f"{label} ({p * 100:.0f}%)" for label, p in answer["top"][:2])
        return (f"I'm not sure: maybe {likely}. Below {answer['confidence_threshold'] * 100:.0f}% confidence "
                f"this model was wrong too often on its validation data (model version {answer['model_version']}).")
    others = ", ".join(f"{label} {p * 100:.0f}%" for label, p in answer["top"][1:])
    text = f"{answer['label']} ({answer['confidence'] * 100:.1f}% confident, model version {answer['model_version']})"
    return text + (f"; then {others}" if others else "")


def _image(cmd: Command) -> bytes | None:
    if cmd.attachment is None:
        return None
    data = cmd.attachment.data
    if isinstance(data, Path):
        check_image_size(data.stat().st_size)  # before reading it
        data = data.read_bytes()
    check_image_size(len(data))
    return data
