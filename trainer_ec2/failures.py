"""Turning any training failure into one plain sentence for the user.

Training failures are typed where they are detected (platform_core.errors.TrainingError and its kinds) and
say their own sentence; only an error nobody anticipated gets the generic one here.
"""
from __future__ import annotations

from platform_core.errors import MlbotError, TrainerOutOfMemory


class LeaseLost(Exception):
    """This trainer no longer holds the machine: stop without writing anything."""


def failure_reason(exc: BaseException, kind: str | None = None) -> str:
    """What went wrong, in words a user can act on; never a stack trace. ``kind``: the dataset's kind."""
    if isinstance(exc, MemoryError):  # raised outside trainer_ec2.loop.training_run, which types its own
        exc = TrainerOutOfMemory(kind, str(exc))
    if isinstance(exc, MlbotError):
        return exc.user_message()
    return f"training stopped on an internal error ({type(exc).__name__}); please try again"
