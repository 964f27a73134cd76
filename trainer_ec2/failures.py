"""Turning any training failure into one plain sentence for the user."""
from __future__ import annotations

from platform_core.errors import MlbotError


class LeaseLost(Exception):
    """This trainer no longer holds the machine: stop without writing anything."""


class TrainingDataError(ValueError):
    """The stored dataset cannot be trained on; the message is shown to the user."""


def failure_reason(exc: BaseException) -> str:
    """What went wrong, in words a user can act on; never a stack trace."""
    if isinstance(exc, MemoryError):
        return "the trainer ran out of memory; try fewer or smaller images"
    if isinstance(exc, TrainingDataError):
        return str(exc)
    if isinstance(exc, MlbotError):
        return exc.user_message()
    if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
        return "the trainer ran out of memory; try fewer or smaller images"
    return f"training stopped on an internal error ({type(exc).__name__}); please try again"
