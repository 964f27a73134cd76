"""template.yaml is valid CloudFormation/SAM (cfn-lint, as `make lint` runs it) and names what the code reads."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests import infra

REPO = Path(__file__).resolve().parents[2]


def test_cfn_lint_passes() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert cfn_lint, "cfn-lint is installed by requirements.txt"
    run = subprocess.run([cfn_lint, str(REPO / "template.yaml")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_predict_function_runs_the_handler_without_torch_on_a_current_runtime() -> None:
    template = infra.load_template()
    function = template["Resources"]["PredictFunction"]["Properties"]
    assert function["Handler"] == "lambda_predict.handler.handler"
    major, minor = (int(x) for x in function["Runtime"].removeprefix("python").split("."))
    assert (major, minor) >= (3, 12)
    assert function["CodeUri"] == "dist/predict.zip"
    assert set(function["Environment"]["Variables"]) >= {"MLBOT_BACKEND", "MLBOT_BUCKET", "MLBOT_DATASET_TABLE"}
    rules = template["Resources"]["DatasetBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r["Prefix"] == "predict-inputs/" and r["ExpirationInDays"] == 1 for r in rules)
