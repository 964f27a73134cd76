"""`mlbot demo`: the furthest flow the platform has, told as a console chat on the local backend."""
from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

from bot.console.progress import ConsoleProgress, finished_text
from bot.wiring import build_services
from handlers.commands import Attachment, Command, Reply
from handlers.datasets import handle_datasets, handle_status
from handlers.predict import handle_predict
from handlers.services import Services
from handlers.train import handle_train
from handlers.upload import handle_upload
from handlers.validate import handle_validate
from platform_core.config import Settings
from platform_core.events import FINISHED

REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TENANT = "console:demo"
SAMPLES = ("fashion_small.zip", "movie_reviews.csv", "broken.zip", "broken.csv", "sneaker.png")


def run_demo(settings: Settings, examples: Path | None = None, *, train: bool = True) -> int:
    """Validate, upload and train the bundled samples, showing what a user sees; 0 when all went as expected."""
    examples = examples or REPO_EXAMPLES
    missing = [n for n in SAMPLES if not (examples / n).is_file()]
    if missing:
        print(f"mlbot demo: missing sample files in {examples}: {', '.join(missing)}")
        return 1
    home = settings.home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    local = replace(settings, backend="local", home=home)
    services, ctx = _wire(local)
    print(f"mlbot demo: a console chat on the local backend (data in {home})\n")
    outcomes = [
        _say(services, "demo", "validate", (), examples / "fashion_small.zip"),
        _say(services, "demo", "upload", ("fashion", "Fashion-MNIST", "clothes"), examples / "fashion_small.zip"),
        _say(services, "demo", "upload", ("reviews", "movie", "review", "snippets"), examples / "movie_reviews.csv"),
        not _say(services, "demo", "upload", ("shoes",), examples / "broken.zip"),
        not _say(services, "demo", "upload", ("tweets",), examples / "broken.csv"),
        not _say(services, "guest", "upload", ("fashion",), examples / "fashion_small.zip"),
    ]
    if train:
        outcomes += [_train(services, ctx, "fashion"), _train(services, ctx, "reviews"),
                     _say(services, "demo", "predict", ("fashion",), examples / "sneaker.png"),
                     _say(services, "demo", "predict", ("reviews", *"a gorgeous, moving film with a superb cast".split())),
                     _say(services, "demo", "predict", ("reviews", *"tedious, clumsy and far too long".split()))]
    outcomes += [_say(services, "demo", "datasets", ()), _say(services, "demo", "status", ("fashion",))]
    print("Try it yourself:")
    print(f"  MLBOT_HOME={home} MLBOT_USER=demo mlbot datasets")
    print("  mlbot validate examples/broken.zip --json")
    if all(outcomes):
        trained = "2 datasets stored, trained and asked for predictions" if train else "2 datasets stored"
        print(f"\nDemo finished: {trained}, 3 bad uploads refused with their reasons.")
        return 0
    print("\nDemo did not go as expected; see the replies above.")
    return 1


def _wire(settings: Settings):
    """Services whose launcher trains in a thread of this process, with events printed here."""
    from platform_core.adapters.launchers import ThreadLauncher
    from trainer_ec2.runner import drain
    from trainer_ec2.wiring import build_trainer_context

    ctx = build_trainer_context(settings)
    return build_services(settings, launcher=ThreadLauncher(lambda: drain(ctx))), ctx


def _train(services: Services, ctx, name: str) -> bool:
    """`train NAME`, then the progress and the summary the chat would receive."""
    progress = ConsoleProgress(TENANT, name, sys.stdout, prefix="  mlbot: ")
    ctx.events.subscribe(progress)
    if not _say(services, "demo", "train", (name,)):
        return False
    if not progress.done.wait(timeout=1800):
        print("  mlbot: training did not finish within 30 minutes")
        return False
    for line in finished_text(progress.final).splitlines():
        print(f"  mlbot: {line}")
    print()
    return progress.final.type == FINISHED


def _say(services: Services, user: str, verb: str, args: tuple[str, ...], file: Path | None = None) -> bool:
    """Print the user's line and the bot's reply, as a chat would show them."""
    attach = f" --file {file.parent.name}/{file.name}" if file else ""
    print(" ".join([f"{user}> {verb}", *args]) + attach)
    cmd = Command(verb, TENANT, user, args, Attachment(file.name, file) if file else None)
    handler = {"validate": handle_validate, "upload": handle_upload, "train": handle_train, "predict": handle_predict,
               "datasets": handle_datasets, "status": handle_status}[verb]
    reply: Reply = handler(cmd, services)
    for line in reply.text.splitlines():
        print(f"  mlbot: {line}")
    if verb != "train":
        print()
    return reply.ok
