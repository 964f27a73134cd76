"""`predict NAME` with an image attached, or `predict NAME some text`."""
from __future__ import annotations

from pathlib import Path

from handlers.commands import Command, Reply
from handlers.replies import error_reply
from handlers.services import Services
from platform_core.errors import MlbotError, UsageError
from platform_core.prediction import check_image_size


def handle_predict(cmd: Command, services: Services) -> Reply:
    """Label and confidence from the dataset's latest good model."""
    try:
        if services.predictor is None:
            raise UsageError("predict is not available here: no predictor is configured")
        if not cmd.args:
            raise UsageError("predict NAME (with an image attached) or predict NAME some text")
        image = _image(cmd)
        text = " ".join(cmd.args[1:]) or None
        answer = services.predictor.predict(cmd.tenant, cmd.args[0], image=image, text=None if image else text)
    except MlbotError as exc:
        return error_reply(exc)
    others = ", ".join(f"{label} {p * 100:.0f}%" for label, p in answer["top"][1:])
    text = f"{answer['label']} ({answer['confidence'] * 100:.1f}% confident, model version {answer['model_version']})"
    return Reply(text + (f"; then {others}" if others else ""), data=answer)


def _image(cmd: Command) -> bytes | None:
    if cmd.attachment is None:
        return None
    data = cmd.attachment.data
    if isinstance(data, Path):
        check_image_size(data.stat().st_size)  # before reading it
        data = data.read_bytes()
    check_image_size(len(data))
    return data
