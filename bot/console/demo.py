"""`mlbot demo`: the furthest flow the platform has, told as a console chat on the local backend.

Upload both bundled examples (and three bad files, refused with their reasons), train both with live
progress, receive the training-complete notifications (the confusion matrices land in the outbox), then
predict an image and two texts, confirm a prediction, predict a whole zip as a CSV and list the models.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from bot.console.chat import ConsoleChat
from platform_core.config import Settings
from platform_core.events import FINISHED

REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TENANT = "console:demo"
SAMPLES = ("fashion_small.zip", "movie_reviews.csv", "broken.zip", "broken.csv", "sneaker.png")


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
    out.write("Try it yourself:\n")
    out.write(f"  MLBOT_HOME={home} MLBOT_USER=demo mlbot chat\n")
    out.write("  mlbot validate examples/broken.zip --json\n")
    if all(outcomes):
        done = "2 datasets stored, trained, notified and asked for predictions" if train else "2 datasets stored"
        out.write(f"\nDemo finished: {done}; 3 bad uploads refused with their reasons.\n")
        return 0
    out.write("\nDemo did not go as expected; see the replies above.\n")
    return 1
