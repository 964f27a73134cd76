"""The chat commands, channel-agnostic: words in, one use case, a Reply out.

Slack (`/ml <verb> ...`), Telegram (`/<verb> ...`) and the console (`<verb> ...`) all parse their text
with ``parse`` and call ``dispatch``; only how files arrive and replies leave differs per channel.
"""
from __future__ import annotations

import re
from typing import Callable

from handlers.commands import Button, Command, Reply
from handlers.datasets import handle_datasets, handle_status
from handlers.apikeys import handle_apikey
from handlers.delete import handle_delete
from handlers.export import handle_export
from handlers.feedback import handle_feedback, handle_forget, handle_retrain
from handlers.models import handle_models, handle_rollback
from handlers.replies import error_reply
from handlers.predict import handle_predict
from handlers.services import Services
from handlers.train import handle_train
from handlers.upload import handle_upload
from platform_core.errors import MlbotError
from platform_core.jobs import ReplyTo

HELP = """I train image and text classifiers on your data, then answer predictions.
- upload NAME [description] (with a file): a zip with one folder of images per class (2-10 classes, 10-100 images each), or a CSV of text,label rows (2-3 labels, 100-1000 rows each)
- datasets: your datasets with their status and accuracy
- train NAME: train a model (you will hear here when it is done)
- status NAME: one dataset's details
- models NAME: every trained version with its accuracy; rollback NAME [VERSION] makes an older one answer
- the buttons under a prediction say whether it was right; retrain NAME adds the corrected examples and trains; forget NAME deletes the inputs kept for that
- predict NAME (with an image) or predict NAME some text: the label and how sure I am; with a zip of images or a CSV of texts, a CSV of predictions
- apikey new [LABEL] / apikey list / apikey revoke ID: keys for the REST API (a new key is shown once, to you only)
- export NAME [VERSION]: the model as a zip that runs without me (onnxruntime, numpy, Pillow), with its metrics
- delete NAME: remove a dataset with its models (asks to confirm)
- help: this message"""

ALIASES = {"start": "help", "list": "datasets", "ls": "datasets"}
_BOT_SUFFIX = re.compile(r"@[A-Za-z0-9_]+$")  # Telegram's /train@mlbot in groups


def parse(text: str) -> tuple[str, tuple[str, ...]]:
    """("verb", args) from a chat line: a leading '/' and a '@botname' on the verb are dropped."""
    words = (text or "").strip().split()
    if not words:
        return "help", ()
    verb = _BOT_SUFFIX.sub("", words[0].lstrip("/")).lower()
    return ALIASES.get(verb, verb), tuple(words[1:])


def handle_help(cmd: Command, services: Services) -> Reply:
    """What the bot can do; an unknown verb gets the same, saying so first."""
    known = cmd.verb in ("help", "")
    text = HELP if known else f"I don't know '{cmd.verb}'.\n{HELP}"
    return Reply(text, ok=known, data={"commands": sorted(VERBS)},
                 buttons=(Button("My datasets", "datasets"),))


VERBS: dict[str, Callable[[Command, Services], Reply]] = {
    "help": handle_help, "upload": handle_upload, "datasets": handle_datasets, "status": handle_status,
    "predict": handle_predict, "models": handle_models, "rollback": handle_rollback, "feedback": handle_feedback,
    "forget": handle_forget, "delete": handle_delete, "export": handle_export,
}


def dispatch(cmd: Command, services: Services, *, reply_to: ReplyTo | None = None) -> Reply:
    """Run the command's use case. ``reply_to`` says where training notifications go (the chat that asked).

    Use cases raise an MlbotError for anything the user can act on; this is the one place it becomes the
    reply (its sentence and code). Anything else is a bug or an outage, left to the channel to log."""
    try:
        if cmd.verb == "train":
            return handle_train(cmd, services, reply_to=reply_to)
        if cmd.verb == "retrain":
            return handle_retrain(cmd, services, reply_to=reply_to)
        if cmd.verb == "apikey":
            return handle_apikey(cmd, services, reply_to=reply_to)
        return VERBS.get(cmd.verb, handle_help)(cmd, services)
    except MlbotError as exc:
        return error_reply(exc)
