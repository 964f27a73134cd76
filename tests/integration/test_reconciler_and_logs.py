"""What an operator watches: the reconciler's metrics (the ones the template's alarms read) and the
functions' structured JSON logs at INFO with the request and job ids."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from moto import mock_aws


from bot.reconciler import run
from platform_core.backend import backend_for
from platform_core.config import Settings
from platform_core.jobs import Job
from tests import infra
from tests.memory import MemoryBackend

REPO = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0


def _job(job_id: str, enqueued_at: float) -> Job:
    return Job(job_id=job_id, tenant="slack:T1", name=job_id, kind="image", recipe="fast",
               dataset_path=f"datasets/slack_T1/{job_id}/v1.zip", dataset_version=1, requested_by="u",
               enqueued_at=enqueued_at)


def test_the_reconciler_publishes_the_metrics_the_alarms_watch(aws_credentials, atomic_moto_writes, capsys,
                                                               monkeypatch) -> None:
    template = infra.load_template()
    env = template["Resources"]["ReconcilerFunction"]["Properties"]["Environment"]["Variables"]
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", env["POWERTOOLS_SERVICE_NAME"])
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "mlbot/test-stack")
    with mock_aws():
        backend = backend_for(infra.deploy(Settings(backend="aws", bucket="mlbot-reconciler", region="us-east-1")))
        for job in (_job("waiting", NOW - 45 * 60), _job("newer", NOW - 60), _job("busy", NOW - 3 * 3600)):
            backend.jobs.submit(job)
            backend.queue().send(job)
        assert backend.jobs.claim("busy", "i-1", NOW - 90 * 60, lease_s=10 ** 6)
        done = run(backend, clock=lambda: NOW)
    assert done.metrics() == {"OldestQueuedJobMinutes": 45.0, "LongestRunningJobMinutes": 90.0, "QueuedJobs": 2.0,
                              "RunningJobs": 1.0, "ResentTickets": 0.0, "FailedStrandedJobs": 0.0,
                              "DeadLetters": 0.0}
    emf = json.loads(next(line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line))
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "mlbot/test-stack" and directive["Dimensions"] == [["service"]]
    assert emf["service"] == "mlbot-reconciler" and emf["LongestRunningJobMinutes"] in (90.0, [90.0])
    alarmed = {a["Properties"]["MetricName"]: a["Properties"] for a in template["Resources"].values()
               if a["Type"] == "AWS::CloudWatch::Alarm" and "MetricName" in a["Properties"]}
    assert "LongestRunningJobMinutes" in alarmed
    for metric, props in alarmed.items():
        if props.get("Namespace") == {"Fn::Sub": env["POWERTOOLS_METRICS_NAMESPACE"]["Fn::Sub"]}:
            assert metric in {m["Name"] for m in directive["Metrics"]}  # every custom metric alarmed is published
            assert props["Dimensions"] == [{"Name": "service", "Value": emf["service"]}]


def test_an_idle_stack_reads_zero_and_sends_no_billed_metric(monkeypatch, capsys) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "mlbot/test-stack")
    done = run(MemoryBackend(), clock=lambda: NOW)
    assert set(done.metrics().values()) == {0.0}
    assert '"_aws"' not in capsys.readouterr().out  # custom metrics are billed by the hour they are sent


CHILD = textwrap.dedent("""
    import json, logging, sys
    from moto import mock_aws
    from tests import infra
    from platform_core.adapters.aws import make_boto3_client
    from platform_core.config import Settings

    class Context:  # what the Lambda runtime passes
        function_name = "stack-ReconcilerFunction-1"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stack-ReconcilerFunction-1"
        aws_request_id = "req-123"

    with mock_aws():
        import os
        infra.create_tables(make_boto3_client("dynamodb", Settings(region="us-east-1")))
        make_boto3_client("s3", Settings(region="us-east-1")).create_bucket(Bucket="mlbot-logs")
        urls = infra.create_queues(make_boto3_client("sqs", Settings(region="us-east-1")))
        os.environ.update(MLBOT_QUEUE_URL=urls["TrainingQueue"], MLBOT_DEAD_LETTER_URL=urls["TrainingDeadLetterQueue"])
        import bot.reconciler
        bot.reconciler.handler({}, Context())
        import bot.notifier
        from platform_core.events import TrainingEvent
        record = {"Sns": {"Message": TrainingEvent("TrainingFinished", "job-42", "slack:T1", "x",
                                                    {"channel": "nowhere"}).to_json()}}
        bot.notifier.notify_records({"Records": [record]}, lambda event: logging.getLogger("handlers.notify").info("sent"))
""")


@pytest.mark.slow  # a subprocess: the root logger is the Lambda runtime's, not pytest's
@pytest.mark.parametrize("in_lambda", [True, False])
def test_in_lambda_every_module_logs_json_at_info_with_the_request_id(in_lambda: bool) -> None:
    env = {**os.environ, "MLBOT_BACKEND": "aws", "MLBOT_BUCKET": "mlbot-logs", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "MLBOT_JOB_TABLE": "Job",
           "POWERTOOLS_SERVICE_NAME": "mlbot-reconciler", "POWERTOOLS_METRICS_NAMESPACE": "mlbot/test"}
    env.pop("POWERTOOLS_LOG_LEVEL", None)  # the default is INFO, which the template's LogLevel also defaults to
    if in_lambda:
        env["AWS_LAMBDA_FUNCTION_NAME"] = "stack-ReconcilerFunction-1"
    else:
        env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    run = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    logs = [line for line in lines if "_aws" not in line]
    if not in_lambda:  # outside Lambda, logging stays as the caller set it up (nothing at INFO here)
        assert logs == [] and "training queue" not in run.stdout + run.stderr
        return
    queue = next(line for line in logs if line["message"].startswith("training queue: 0 queued"))
    assert queue["level"] == "INFO" and queue["service"] == "mlbot-reconciler"
    assert queue["function_request_id"] == "req-123" and queue["cold_start"] is True
    sent = next(line for line in logs if line["message"] == "sent")
    assert sent["job_id"] == "job-42" and sent["location"]  # a job's lines carry its id
