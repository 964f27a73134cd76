"""`make package`: the inference Lambda as a deployment zip, from manylinux wheels for the Lambda runtime.

    python -m tools.package [--python-version 3.12] [--out dist]

Contents: ``lambda_predict/`` and ``platform_core/`` (our code), and onnxruntime, numpy, Pillow and tokenizers
at the versions requirements.txt pins, as manylinux x86_64 wheels for the runtime's Python (pip download
with --platform, --only-binary and --no-deps, so nothing is built and no dependency of theirs is dragged in:
none is imported at inference; boto3 comes with the Lambda runtime). Parts of onnxruntime only used offline
(its tools, transformers optimiser and quantisation packages) and every __pycache__ are left out. Prints
the zipped and unzipped sizes and fails if the unzipped size passes Lambda's 250 MB limit or torch is in it.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("onnxruntime", "numpy", "pillow", "tokenizers")
OUR_PACKAGES = ("lambda_predict", "platform_core")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
OFFLINE_ONLY = ("onnxruntime/tools", "onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/datasets")
FORBIDDEN = ("torch", "torchvision", "sentence_transformers", "transformers")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
MB = 1024 * 1024


class PackageError(RuntimeError):
    """The package could not be built, or breaks a Lambda limit."""


def pins(requirements: Path = REPO / "requirements.txt") -> list[str]:
    """``name==version`` for each runtime package, as requirements.txt pins it (one source of versions)."""
    found = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if match and match.group(1).lower() in RUNTIME_PACKAGES:
            found[match.group(1).lower()] = f"{match.group(1)}=={match.group(2)}"
    missing = [p for p in RUNTIME_PACKAGES if p not in found]
    if missing:
        raise PackageError(f"requirements.txt pins no version of {', '.join(missing)}")
    return [found[p] for p in RUNTIME_PACKAGES]


def install_wheels(target: Path, python_version: str) -> None:
    """The runtime packages' manylinux wheels for ``python_version``, unpacked into ``target``."""
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(target), "--only-binary=:all:", "--no-deps", "--implementation", "cp",
            "--python-version", python_version]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    run = subprocess.run(args + pins(), capture_output=True, text=True)
    if run.returncode:
        raise PackageError(f"pip could not fetch the wheels:\n{run.stderr.strip()}")


def copy_sources(target: Path) -> None:
    for package in OUR_PACKAGES:
        shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def prune(target: Path) -> None:
    """Offline-only parts, caches and pip's bin/ scripts."""
    for relative in (*OFFLINE_ONLY, "bin"):
        shutil.rmtree(target / relative, ignore_errors=True)
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(out: Path, python_version: str = "3.12", name: str = "predict") -> tuple[Path, int, int]:
    """Build ``out/<name>.zip``; returns its path, zipped size and unzipped size in bytes."""
    with tempfile.TemporaryDirectory(prefix="mlbot-package-") as tmp:
        root = Path(tmp) / "package"
        install_wheels(root, python_version)
        copy_sources(root)
        prune(root)
        bad = sorted({p.relative_to(root).parts[0] for p in root.iterdir()} & set(FORBIDDEN))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.package", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python-version", default="3.12", help="the Lambda runtime's Python (template.yaml)")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    args = parser.parse_args(argv)
    try:
        archive, zipped, unzipped = build(args.out, args.python_version)
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    print(f"{archive.relative_to(Path.cwd()) if archive.is_relative_to(Path.cwd()) else archive}: "
          f"{zipped / MB:.1f} MB zipped, {unzipped / MB:.1f} MB unzipped "
          f"(Lambda allows 250 MB unzipped; python{args.python_version}, manylinux x86_64)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
