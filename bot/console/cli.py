"""`mlbot`: the command line of the README (exit 0 done, 1 rejected or failed, 2 usage)."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from bot.wiring import build_services
from handlers.chat import dispatch
from handlers.commands import Attachment, Command, Reply
from handlers.validate import handle_validate
from platform_core.config import Settings
from platform_core.errors import ConfigError
from platform_core.jobs import ReplyTo


def console_tenant() -> tuple[str, str]:
    """The console's tenant and user: `console:<user>`."""
    user = os.environ.get("MLBOT_USER") or getpass.getuser() or "local"
    return f"console:{user}", user


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlbot", description="Train and use image and text classifiers from a chat.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("validate", help="check a zip of images or a sentiment CSV; exit 0 valid, 1 invalid")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("upload", help="validate and store a dataset")
    p.add_argument("file", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--description", default="")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("datasets", help="list datasets with status and accuracies")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("status", help="one dataset's record")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("train", help="queue training of a dataset; --wait trains here and shows progress")
    p.add_argument("name")
    p.add_argument("--recipe", default=None, help="image: fast (default) or seed; text: encoder (default) or seed")
    p.add_argument("--wait", action="store_true", help="block until training ends, showing progress")
    p.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("predict", help="label and confidence for an image or a text")
    p.add_argument("name")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", type=Path)
    what.add_argument("--text")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export", help="the model as a zip that runs without mlbot (onnxruntime, numpy, Pillow)")
    p.add_argument("name")
    p.add_argument("--version", type=int, default=None, help="a stored version (default: the current one)")
    p.add_argument("--out", type=Path, default=None, help="where to write the zip (default: NAME-vN.zip here)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("apikey", help="keys for the REST API: create (shown once), list, revoke ID")
    p.add_argument("action", choices=("create", "list", "revoke"))
    p.add_argument("id", nargs="?", help="the key to revoke")
    p.add_argument("--label", default="", help="a name for the new key (what it is for)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("serve", help="serve the trainer's HTTP routes and train in this process")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    sub.add_parser("chat", help="an interactive console chat with the same commands as Slack and Telegram")
    p = sub.add_parser("demo", help="the whole flow on the local backend with the bundled examples")
    p.add_argument("--examples", type=Path, default=None, help="folder of sample datasets (default: the repo's)")
    p.add_argument("--no-train", action="store_true", help="validate and upload only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"mlbot: {exc.user_message()}", file=sys.stderr)
        return 2
    if args.command == "demo":
        from bot.console.demo import run_demo

        return run_demo(settings, args.examples, train=not args.no_train)
    if args.command == "serve":
        from bot.console.serve import run_serve

        return run_serve(settings, args.port, args.host)
    tenant, user = console_tenant()
    if args.command == "chat":
        from bot.console.chat import run_chat

        return run_chat(settings, tenant=tenant, user=user)
    if args.command == "train":
        from bot.console.train_cmd import run_train

        return run_train(settings, tenant, user, args.name, recipe=args.recipe, wait=args.wait,
                         as_json=args.json, epochs=args.epochs)
    if args.command in ("validate", "upload") and not args.file.is_file():
        print(f"mlbot: no such file: {args.file}", file=sys.stderr)
        return 1
    if args.command == "predict" and args.image is not None and not args.image.is_file():
        print(f"mlbot: no such file: {args.image}", file=sys.stderr)
        return 1
    services = build_services(settings)
    cmd = _command(args, tenant, user)
    reply = handle_validate(cmd, services) if cmd.verb == "validate" else \
        dispatch(cmd, services, reply_to=ReplyTo("console", user=user))
    if cmd.verb == "apikey" and args.action == "create" and reply.ok and args.json:
        reply = Reply(reply.text, data={"id": reply.data["id"], "key": reply.data["key"]})
    if cmd.verb == "export" and reply.ok and reply.file:
        out = args.out or Path(reply.file[0])
        try:
            out.write_bytes(reply.file[1])
        except OSError as exc:
            print(f"mlbot: could not write {out}: {exc.strerror or exc}; choose another --out", file=sys.stderr)
            return 1
        reply = Reply(f"Wrote {out} ({len(reply.file[1]):,} bytes): model version {reply.data['version']} of "
                      f"'{reply.data['name']}'. Unzip it and see README.md.", data={**reply.data, "path": str(out)})
    return emit(reply, as_json=args.json)


def _command(args: argparse.Namespace, tenant: str, user: str) -> Command:
    attachment = Attachment(args.file.name, args.file) if getattr(args, "file", None) else None
    if args.command == "validate":
        return Command("validate", tenant, user, (), attachment, admin=True)
    if args.command == "upload":
        return Command("upload", tenant, user, (args.name, *args.description.split()), attachment, admin=True)
    if args.command == "status":
        return Command("status", tenant, user, (args.name,))
    if args.command == "apikey":
        words = {"create": ("new", *args.label.split()), "list": ("list",), "revoke": ("revoke", *([args.id] if args.id else []))}
        return Command("apikey", tenant, user, words[args.action], admin=True)  # the console's user runs it
    if args.command == "export":
        return Command("export", tenant, user, (args.name, *([str(args.version)] if args.version is not None else [])))
    if args.command == "predict":
        image = Attachment(args.image.name, args.image) if args.image else None
        return Command("predict", tenant, user, (args.name, *(args.text.split() if args.text else ())), image)
    return Command("datasets", tenant, user)


def emit(reply: Reply, *, as_json: bool) -> int:
    """Print the reply (text, or one JSON object) and return 0 when it succeeded, else 1."""
    if as_json:
        print(json.dumps(reply.data, indent=2, sort_keys=True, default=str))
    else:
        print(reply.text)
    return 0 if reply.ok else 1


if __name__ == "__main__":
    sys.exit(main())
