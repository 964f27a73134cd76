"""`mlbot demo`: the furthest flow the platform has, told as a console chat on the local backend.

Upload both bundled examples (and three bad files, refused with their reasons), train both with live
progress, receive the training-complete notifications (the confusion matrices land in the outbox), then
predict an image and two texts, confirm a prediction, predict a whole zip as a CSV, list the models, export
one, and finally make an API key and call the REST API once over HTTP (`mlbot serve`'s app on a free port of
127.0.0.1, for the length of one request).
"""
from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from bot.console.chat import ConsoleChat
from platform_core.config import Settings
from platform_core.events import FINISHED

REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TENANT = "console:demo"
SAMPLES = ("fashion_small.zip", "movie_reviews.csv", "broken.zip", "broken.csv", "sneaker.png")


def call_api(chat: ConsoleChat, key: str, out: TextIO) -> bool:
    """One REST call over HTTP, as code outside the chat makes it: a text prediction, through the app
    `mlbot serve` runs, on a free port of 127.0.0.1 for the length of the request."""
    import threading

    from werkzeug.serving import WSGIRequestHandler, make_server

    from bot.console.serve import combined_app, webhook_routes

    def no_trainer(environ, start_response):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not here"]

    app = combined_app(webhook_routes(chat.settings, chat.services, chat.backend), no_trainer)
    class Quiet(WSGIRequestHandler):  # the demo prints the call itself
        def log_request(self, *args, **kwargs) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/v1/datasets/reviews/predict"
    body = {"text": "a gorgeous, moving film"}
    out.write(f"code> curl -H 'Authorization: Bearer mlbot_...' -H 'Content-Type: application/json' \\\n"
              f"        -d '{json.dumps(body)}' {url}\n")
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, answer = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, json.loads(exc.read() or b"{}")
    finally:
        server.shutdown()
        thread.join(5)
    out.write(f"  HTTP {status}: {json.dumps(answer, sort_keys=True)}\n\n")
    return status == 200 and "label" in answer


def run_demo(settings: Settings, examples: Path | None = None, *, train: bool = True, out: TextIO = sys.stdout) -> int:
    """Play the story; 0 when every reply was what a user should get."""
    examples = examples or REPO_EXAMPLES
    missing = [n for n in SAMPLES if not (examples / n).is_file()]
    if missing:
        out.write(f"mlbot demo: missing sample files in {examples}: {', '.join(missing)}\n")
        return 1
    home = settings.home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    chat = ConsoleChat(replace(settings, backend="local", home=home), tenant=TENANT, user="demo", out=out)
    out.write(f"mlbot demo: a console chat on the local backend (data in {home})\n\n")

    def say(line: str, user: str = "demo", expect_ok: bool = True):
        out.write(f"{user}> {line}\n")
        reply = chat.say(line.replace("examples/", f"{examples}/"), user=user)
        out.write("\n")
        return reply.ok == expect_ok, reply

    outcomes = [say("help")[0],
                say("upload fashion --file examples/fashion_small.zip Fashion-MNIST clothes")[0],
                say("upload reviews --file examples/movie_reviews.csv movie review snippets")[0],
                say("upload shoes --file examples/broken.zip", expect_ok=False)[0],
                say("upload tweets --file examples/broken.csv", expect_ok=False)[0],
                say("upload fashion --file examples/fashion_small.zip", user="guest", expect_ok=False)[0]]
    if train:
        for name in ("fashion", "reviews"):
            ok, reply = say(f"train {name}")
            final = chat.wait_for(reply.data.get("job_id", ""), timeout=1800) if ok else None
            out.write("\n")
            outcomes.append(final is not None and final.type == FINISHED)
        ok, photo = say("predict fashion --file examples/sneaker.png")
        outcomes += [ok, say("predict reviews a gorgeous, moving film with a superb cast")[0],
                     say("predict reviews tedious, clumsy and far too long")[0]]
        if ok:  # the user presses "Right" under the answer: the photo is kept as a candidate example
            outcomes.append(say(f"feedback fashion {photo.data['prediction_id']} {photo.data['label']}")[0])
        outcomes += [say("predict fashion --file examples/fashion_small.zip")[0],  # a batch: CSV back
                     say("models fashion")[0],
                     say("export fashion")[0]]  # the model as a zip that runs without mlbot
    outcomes += [say("datasets")[0], say("status fashion")[0]]
    if train:  # last, the REST API: a key, and one call from code over HTTP
        ok, made = say("apikey new demo")
        outcomes.append(ok and call_api(chat, made.data["key"], out))
    out.write("Try it yourself:\n")
    out.write(f"  MLBOT_HOME={home} MLBOT_USER=demo mlbot chat\n")
    out.write("  mlbot validate examples/broken.zip --json\n")
    out.write(f"  MLBOT_HOME={home} mlbot serve --port 8080   # the REST API under /v1/ (README \"The REST API\")\n")
    if all(outcomes):
        done = "2 datasets stored, trained, notified and asked for predictions" if train else "2 datasets stored"
        out.write(f"\nDemo finished: {done}; 3 bad uploads refused with their reasons.\n")
        return 0
    out.write("\nDemo did not go as expected; see the replies above.\n")
    return 1
