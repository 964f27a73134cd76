"""Cold start: the Slack acknowledgement path, measured in fresh processes against the moto server.

Each run is a new `python -I` child (what a cold Lambda container does before Slack's 3 seconds run out):
(a) `import bot.slack.lambda_entry`, (b) settings and the chat secret read from Secrets Manager, (c) building
the handler, (d) the first signed request through `lambda_entry.handler(event, context)` up to the
acknowledgement. Two first requests: `/ml help` (a slash command carries no event_id, so no dedupe write) and a
direct message event (its event_id taken by the conditional write on the Idempotency table). Bolt's lazy
self-invoke is the production one: Bolt builds its own `boto3.client("lambda")` and sends the Event
invocation to a function created on the moto server (moto's Lambda without docker accepts it and runs
nothing). `eager` builds the use cases' services and imports the handler modules before the ack, as the
entry did before; `lazy` is what the entry does now. Medians of 5 runs; the AWS state is checked afterwards
(dedupe rows written, invocations accepted with 202).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
FUNCTION = "mlbot-slack"
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BUCKET = "mlbot-coldstart"
PHASES = ("import", "settings", "build", "request")

# Runs in the child. Every phase is timed inside it with perf_counter; nothing of the bench is imported first.
CHILD = r"""
import json, os, sys, time
sys.path.insert(0, os.environ["COLDSTART_REPO"])
mode, kind = sys.argv[1], sys.argv[2]
event, context = json.loads(os.environ["COLDSTART_EVENT"]), None
marks = {}

class Context:
    function_name = os.environ["COLDSTART_FUNCTION"]
    invoked_function_arn = os.environ["COLDSTART_FUNCTION_ARN"]

t0 = time.perf_counter()
import bot.slack.lambda_entry as entry
t1 = time.perf_counter()
settings = entry.settings_from_env()
t2 = time.perf_counter()
if mode == "eager":  # as before the cut: the use cases' clients and every handler module before the ack
    import handlers.chat
    from bot.wiring import build_services
    built = entry.build_handler(settings, build_services(settings))
else:
    built = entry.build_handler(settings)
t3 = time.perf_counter()

import boto3  # untimed: observe the invocation Bolt sends (its own client, built on first use)
invokes, client_of = [], boto3.client
def observed(*args, **kwargs):
    client = client_of(*args, **kwargs)
    client.meta.events.register("after-call.lambda.Invoke",
                                lambda http_response, **_: invokes.append(http_response.status_code))
    return client
boto3.client = observed
heavy_before = sorted(m for m in ("PIL", "telegram", "handlers.chat", "platform_core.adapters.aws_fleet") if m in sys.modules)

def peak_kib():  # VmHWM: this process image's own peak (ru_maxrss would carry over the forking parent's)
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
t4 = time.perf_counter()
entry._handler = built
answer = entry.handler(event, Context())
t5 = time.perf_counter()
print(json.dumps({
    "import": t1 - t0, "settings": t2 - t1, "build": t3 - t2, "request": t5 - t4, "total": (t3 - t0) + (t5 - t4),
    "status": answer["statusCode"], "body": answer.get("body", ""), "invokes": invokes,
    "heavy_loaded": heavy_before,
    "peak_rss_kib": peak_kib()}))
"""


def sign(body: str, timestamp: str) -> dict[str, str]:
    import hashlib
    import hmac

    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": timestamp, "x-slack-signature": f"v0={digest}"}


def gateway_event(body: str, content_type: str) -> dict:
    """A signed API Gateway HTTP API (payload 2.0) request, as bot/console/serve.py:gateway_event builds it."""
    headers = {"content-type": content_type, **sign(body, str(int(time.time())))}
    return {"version": "2.0", "routeKey": "POST /slack/events", "rawPath": "/slack/events", "headers": headers,
            "queryStringParameters": None, "requestContext": {"http": {"method": "POST", "path": "/slack/events"}},
            "body": body, "isBase64Encoded": False}


def first_request(kind: str, run: int) -> tuple[dict, str | None]:
    """The signed event, and the dedupe key it must leave in the Idempotency table (None: a command has none)."""
    from urllib.parse import parse_qsl, urlencode

    events = REPO / "tests" / "events"
    if kind == "command":
        fields = dict(parse_qsl((events / "slack_slash_command.txt").read_text().strip()))
        fields.update(text="help")
        return gateway_event(urlencode(fields), "application/x-www-form-urlencoded"), None
    payload = json.loads((events / "slack_message_im.json").read_text())
    payload["event_id"] = f"EvCOLD{kind}{run}{time.time_ns()}"
    payload["event"]["text"] = "help"
    return gateway_event(json.dumps(payload), "application/json"), f"slack:event:{payload['event_id']}"


class Cloud:
    """The moto server with what the Slack function finds deployed: tables and bucket (template.yaml), the
    chat secret, and the function itself, so the Event self-invocation has somewhere to go."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            os.environ.pop(name, None)
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._post("/moto-api/reset", b"")
        self._post("/moto-api/config", json.dumps({"lambda": {"use_docker": False}}).encode())

        from platform_core.adapters.aws import make_boto3_client
        from platform_core.config import Settings
        from tests import infra
        from tests.fake_slack import BOT_TOKEN, FakeSlack

        self.slack = FakeSlack()  # Bolt's single-workspace authorization calls auth.test on the first request

        base = Settings(backend="aws", bucket=BUCKET, region=REGION, aws_endpoint_url=self.endpoint)
        self.client = lambda service: make_boto3_client(service, base)
        template = infra.load_template()
        tables = infra.resources_of_type(template, "AWS::DynamoDB::Table")  # named as a deployment would
        self.names = infra.create_tables(self.client("dynamodb"), names={t: f"mlbot-{t}" for t in tables},
                                         template=template)
        infra.create_bucket(self.client("s3"), BUCKET, template=template)
        self.queue_url = infra.create_queues(self.client("sqs"), template=template)["TrainingQueue"]
        self.secret_arn = self.client("secretsmanager").create_secret(
            Name="mlbot/chat", SecretString=json.dumps({"SLACK_SIGNING_SECRET": SIGNING_SECRET,
                                                        "SLACK_BOT_TOKEN": BOT_TOKEN}))["ARN"]
        role = self.client("iam").create_role(RoleName="mlbot-slack", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("bot/slack/lambda_entry.py", "def handler(event, context):\n    return None\n")
        self.function_arn = self.client("lambda").create_function(
            FunctionName=FUNCTION, Runtime="python3.12", Role=role, Handler="bot.slack.lambda_entry.handler",
            Code={"ZipFile": code.getvalue()})["FunctionArn"]

    def _post(self, path: str, data: bytes) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}{path}", data=data, method="POST"),
                               timeout=10).read()

    def env(self, event: dict, code: Path = REPO) -> dict[str, str]:
        """The Slack function's environment (template.yaml's variables), pointed at the moto server."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLBOT_", "SLACK_", "TELEGRAM_"))}
        return {**keep, "MLBOT_BACKEND": "aws", "MLBOT_BUCKET": BUCKET,
                "MLBOT_DATASET_TABLE": self.names["DatasetTable"], "MLBOT_JOB_TABLE": self.names["JobTable"],
                "MLBOT_MACHINE_TABLE": self.names["MachineStatusTable"],
                "MLBOT_IDEMPOTENCY_TABLE": self.names["IdempotencyTable"],
                "MLBOT_PREDICT_FUNCTION": "mlbot-predict", "MLBOT_QUEUE_URL": self.queue_url,
                "MLBOT_TRAINER_GROUP": "mlbot-bench-trainers",
                "MLBOT_SECRETS_ARN": self.secret_arn, "SLACK_API_URL": self.slack.api_url, "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
                "COLDSTART_REPO": str(code), "COLDSTART_EVENT": json.dumps(event),
                "COLDSTART_FUNCTION": FUNCTION, "COLDSTART_FUNCTION_ARN": self.function_arn}

    def dedupe_written(self, key: str) -> bool:
        item = self.client("dynamodb").get_item(TableName=self.names["IdempotencyTable"], Key={"key": {"S": key}})
        return "Item" in item

    def close(self) -> None:
        self.slack.close()
        self.server.stop()


def run_child(cloud: Cloud, mode: str, kind: str, run: int, code: Path = REPO) -> dict:
    event, dedupe_key = first_request(kind, run)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-I", "-c", CHILD, mode, kind], env=cloud.env(event, code),
                          capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{mode}/{kind} child failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["status"] != 200 or out["invokes"] != [202]:
        raise RuntimeError(f"{mode}/{kind}: answered {out['status']} {out['body']!r}, invokes {out['invokes']}:\n{proc.stderr[-3000:]}")
    out["wall"] = wall
    out["dedupe"] = cloud.dedupe_written(dedupe_key) if dedupe_key else None
    if dedupe_key and not out["dedupe"]:
        raise RuntimeError(f"{mode}/{kind}: no dedupe row for {dedupe_key}")
    return out


def measure(runs: int, modes: Sequence[str], kinds: Sequence[str], code: Path = REPO
            ) -> dict[tuple[str, str], list[dict]]:
    cloud = Cloud()
    try:
        results: dict[tuple[str, str], list[dict]] = {(m, k): [] for m in modes for k in kinds}
        for run in range(runs):  # interleaved, so a slow moment of the machine falls on every row alike
            for key in results:
                results[key].append(run_child(cloud, *key, run, code))
        return results
    finally:
        cloud.close()


def table(results: dict[tuple[str, str], list[dict]], runs: int) -> str:
    ms = lambda values: f"{1000 * statistics.median(values):.0f}"  # noqa: E731
    lines = [
        f"Fresh `python -I` child per run (median of {runs}), AWS played by moto's server on loopback; "
        f"{os.cpu_count()} cores. Phases timed inside the child; wall = the whole child process (interpreter "
        "start and exit included). Self-invoke: Bolt's own boto3 Lambda client sends the Event invocation to a "
        "function created on the moto server (accepted with 202, no code run). `eager` builds the services and "
        "imports the handler modules before the ack (as before this change); `lazy` is the entry as written (`build_handler(settings)`, what `handler` does).", "",
        "| mode | first request | (a) import (ms) | (b) settings + secret (ms) | (c) build handler (ms) "
        "| (d) request to ack (ms) | total (ms) | child wall (ms) | peak RSS (MiB) | dedupe write | loaded at ack |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for (mode, kind), rows in results.items():
        dedupe = "yes" if all(r["dedupe"] for r in rows) else ("none (no event_id)" if rows[0]["dedupe"] is None
                                                               else "MISSING")
        heavy = ", ".join(rows[0]["heavy_loaded"]) or "-"
        lines.append(
            f"| {mode} | {'`/ml help`' if kind == 'command' else 'DM event'} | "
            + " | ".join(ms([r[p] for r in rows]) for p in (*PHASES, "total", "wall"))
            + f" | {statistics.median(r['peak_rss_kib'] for r in rows) / 1024:.0f} | {dedupe} | {heavy} |")
    totals = {m: statistics.median(r["total"] for (mode, _), rows in results.items() if mode == m for r in rows)
              for m in dict.fromkeys(m for m, _ in results)}
    if "eager" in totals and "lazy" in totals:
        lines += ["", f"lazy - eager, median total over both first requests: "
                      f"{1000 * (totals['lazy'] - totals['eager']):+.0f} ms "
                      f"({1000 * totals['eager']:.0f} -> {1000 * totals['lazy']:.0f} ms)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=("eager", "lazy", "both"), default="both")
    parser.add_argument("--first", choices=("command", "event", "both"), default="both")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="measure the code of another checkout (e.g. `git archive HEAD` unpacked there)")
    args = parser.parse_args(argv)
    modes = ("eager", "lazy") if args.mode == "both" else (args.mode,)
    kinds = ("command", "event") if args.first == "both" else (args.first,)
    if args.code.resolve() != REPO:
        print(f"code measured: {args.code}")
    print(table(measure(args.runs, modes, kinds, args.code.resolve()), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
