"""`make package`: the predict Lambda zip holds everything the handler imports, and nothing of torch.

The zip is built for this interpreter's Python version (the deployed one targets template.yaml's runtime)
and run with the standard library and the zip's contents only (``python -I -S``), on really trained models.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.integration.conftest import TRAINED_TENANT
from tools import package

REPO = Path(__file__).resolve().parents[2]


def test_the_pins_come_from_requirements_txt() -> None:
    pinned = package.pins()
    assert [p.split("==")[0].lower() for p in pinned] == list(package.RUNTIME_PACKAGES)
    assert all("==" in p and p.split("==")[1] for p in pinned)


@pytest.mark.slow
def test_the_zip_alone_runs_the_handler_on_trained_models(trained_home: Path, tmp_path: Path) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    archive, zipped, unzipped = package.build(tmp_path / "dist", version)
    assert unzipped < package.LAMBDA_UNZIPPED_LIMIT and zipped < unzipped
    with zipfile.ZipFile(archive) as zf:
        top = {n.split("/")[0] for n in zf.namelist()}
        zf.extractall(tmp_path / "unzipped")
    assert {"lambda_predict", "platform_core", "onnxruntime", "numpy", "PIL", "tokenizers"} <= top
    assert not top & {"torch", "torchvision", "transformers", "boto3", "tests", "trainer_ec2", "bot"}
    image = base64.b64encode((REPO / "examples" / "sneaker.png").read_bytes()).decode()
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path / "unzipped")!r})
        from lambda_predict.handler import handler
        answers = [handler({{"tenant": {TRAINED_TENANT!r}, "dataset": "clothes", "image_base64": {image!r}}}),
                   handler({{"tenant": {TRAINED_TENANT!r}, "dataset": "reviews", "text": "A lovely, moving film."}})]
        print(json.dumps({{"answers": answers}}))
        """)
    runtime = lambda_runtime(tmp_path)
    code = code.replace("from lambda_predict", f"sys.path.append({str(runtime)!r})\nfrom lambda_predict", 1)
    env = {"PATH": os.environ.get("PATH", ""), "MLBOT_BACKEND": "local", "MLBOT_HOME": str(trained_home)}
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    image_answer, text_answer = report["answers"]
    assert image_answer["ok"] and image_answer["label"] == "sneaker", image_answer
    assert text_answer["ok"] and text_answer["label"] == "positive", text_answer


LAMBDA_RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"}  # AWS provides these


def lambda_runtime(tmp_path: Path) -> Path:
    """A folder with what the Lambda runtime itself provides beside a function's zip, and nothing else."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    runtime = tmp_path / "lambda-runtime"
    runtime.mkdir()
    for name in sorted(LAMBDA_RUNTIME):
        (runtime / name).symlink_to(site / name)
    return runtime


@pytest.mark.slow
def test_the_bot_zip_holds_the_chat_lambdas_without_torch_or_onnxruntime(tmp_path: Path) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    archive, _, unzipped = package.build(tmp_path / "dist", version, "bot")
    assert unzipped < package.LAMBDA_UNZIPPED_LIMIT
    with zipfile.ZipFile(archive) as zf:
        top = {n.split("/")[0] for n in zf.namelist()}
        zf.extractall(tmp_path / "unzipped")
    assert {"bot", "handlers", "platform_core", "slack_bolt", "telegram", "PIL"} <= top
    assert not top & {"torch", "onnxruntime", "numpy", "lambda_predict", "trainer_ec2", "tests"}
    runtime = lambda_runtime(tmp_path)
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path / "unzipped")!r})
        sys.path.append({str(runtime)!r})
        import bot.slack.lambda_entry, bot.telegram.lambda_entry, bot.notifier, bot.monitor
        from handlers.chat import dispatch
        print("imported")
        """)
    env = {"PATH": os.environ.get("PATH", "")}
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "imported"
