"""The one place where errors become replies."""
from __future__ import annotations

import logging

from handlers.commands import Reply
from platform_core.errors import DatasetRejected, MlbotError

log = logging.getLogger(__name__)


def error_reply(exc: MlbotError) -> Reply:
    """A failed reply carrying the error's sentence and its code."""
    data: dict = {"error": exc.code, "message": exc.user_message()}
    if isinstance(exc, DatasetRejected):
        data["validation"] = exc.report.as_dict()
    log.info("request refused: %s (%s)", exc.code, type(exc).__name__)
    return Reply(text=exc.user_message(), ok=False, data=data)


def format_accuracy(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
