"""`mlbot serve`: the trainer's HTTP routes on the local backend, training in this process.

The chat webhook routes (/slack/events, /telegram/webhook) join these when the chat channels land.
"""
from __future__ import annotations

import logging

from platform_core.config import Settings


def run_serve(settings: Settings, port: int, host: str = "127.0.0.1") -> int:
    """Serve until interrupted; returns the exit code."""
    from werkzeug.serving import make_server

    from trainer_ec2.app import create_app
    from trainer_ec2.wiring import build_trainer_context

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(build_trainer_context(settings))
    app.extensions["mlbot_drainer"].kick()  # jobs queued while nothing was serving
    server = make_server(host, port, app, threaded=True)
    print(f"mlbot serving on http://{host}:{server.server_port} (GET /health, POST /train_*, POST /predict_*); "
          "Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
