"""Test servers on 127.0.0.1 in a daemon thread."""
from __future__ import annotations

import threading
from typing import Any

# serve_forever checks for shutdown() once per poll interval (0.5 s by default): every test that stops
# a server would wait that long.
POLL_S = 0.01


def serve_in_thread(server: Any, name: str | None = None, *, start: bool = True) -> threading.Thread:
    """Run ``server.serve_forever`` in a daemon thread that shutdown() stops within POLL_S."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_S}, name=name, daemon=True)
    if start:
        thread.start()
    return thread
