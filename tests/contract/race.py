"""Racing actions for the contract suites: released together on their own threads."""
from __future__ import annotations

import threading
from typing import Any, Callable


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions on their own threads, released together; return each result or exception."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[Any] = [None] * len(actions)

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = actions[index]()
        except BaseException as exc:  # noqa: BLE001 - the outcome is what we assert on
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes
