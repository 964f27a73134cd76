"""The dependency rules (README "Layout"), checked on the source: nothing imports upward or sideways."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from platform_core import errors

ROOT = Path(__file__).resolve().parents[2]
CHAT_SDKS = {"slack_bolt", "slack_sdk", "telegram"}
AWS_SDKS = {"boto3", "botocore", "aws_lambda_powertools"}
HEAVY = {"torch", "torchvision", "sentence_transformers"}


def imports_of(package: str) -> dict[str, set[str]]:
    """Top-level module names imported by each file of ``package``."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", ["handlers", "platform_core"])
def test_core_and_handlers_import_no_chat_sdk_and_no_torch(package: str) -> None:
    for path, names in imports_of(package).items():
        assert not names & (CHAT_SDKS | HEAVY), path


def test_only_the_aws_adapters_import_boto3_or_powertools() -> None:
    for package in ("handlers", "platform_core", "bot", "trainer_ec2", "lambda_predict"):
        for path, names in imports_of(package).items():
            if not path.startswith("platform_core/adapters/aws"):
                assert not names & AWS_SDKS, path


def test_platform_core_never_imports_upward() -> None:
    for path, names in imports_of("platform_core").items():
        assert not names & {"bot", "handlers", "trainer_ec2", "lambda_predict"}, path


def test_handlers_never_import_channel_adapters() -> None:
    for path, names in imports_of("handlers").items():
        assert "bot" not in names, path


def test_validation_modules_stay_small() -> None:
    for path in (ROOT / "platform_core").rglob("*.py"):
        # errors.py is the one error hierarchy: a list of small classes, read by name, not top to bottom;
        # portable.py is copied whole into every export as mlbot_model.py, so it cannot be split
        limit = {"errors.py": 400, "portable.py": 360}.get(path.name, 260)
        assert len(path.read_text().splitlines()) <= limit, f"{path} has grown past a readable size"


def test_every_error_a_user_is_told_is_defined_in_the_one_error_module() -> None:
    hierarchy = {name for name, value in vars(errors).items() if isinstance(value, type)
                 and issubclass(value, errors.MlbotError)}
    for package in ("bot", "handlers", "platform_core", "trainer_ec2", "lambda_predict"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "platform_core" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                    assert not bases & hierarchy, f"{path.relative_to(ROOT)}: {node.name} belongs in errors.py"
