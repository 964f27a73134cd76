"""The local backend's EventBus: training events delivered to in-process subscribers (the console chat,
`mlbot serve`'s notifier, `mlbot train --wait`'s progress)."""
from __future__ import annotations

import logging
from typing import Callable

from platform_core.events import TrainingEvent

log = logging.getLogger(__name__)


class LocalEventBus:
    """In-process delivery to subscribers; one failing subscriber never stops the others."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[TrainingEvent], None]] = []

    def subscribe(self, handler: Callable[[TrainingEvent], None]) -> None:
        """Call ``handler`` for every event published from now on."""
        self._subscribers.append(handler)

    def publish(self, event: TrainingEvent) -> None:
        """Hand the event to each subscriber in turn."""
        for handler in list(self._subscribers):
            try:
                handler(event)
            except Exception:  # a notification failure never fails the job
                log.exception("event subscriber failed for %s %s", event.type, event.job_id)
