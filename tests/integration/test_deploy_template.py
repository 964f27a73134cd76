"""template.yaml deploys: the real SAM transform, cfn-lint (with the serverless rules) on the template
and on its translation, least privilege read off the translated roles, and what an operator watches.

cfn-lint 1.x no longer runs the SAM transform, so linting template.yaml alone would pass a template that
CloudFormation rejects; here aws-sam-translator does what the `AWS::Serverless-2016-10-31` transform does
at deploy time, and cfn-lint checks its output as CloudFormation will see it.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator

import pytest
from samtranslator.model.exceptions import InvalidDocumentException

from tests import infra
from tools.deploycheck import lint as _lint

BUCKET = "${DatasetBucket.Arn}"
CHAT_FUNCTIONS = ("SlackFunction", "TelegramFunction")
# Where each role may write (put or delete objects); anything else in the bucket is out of bounds.
WRITABLE = {
    "SlackFunction": ("datasets", "feedback", "feedback-pending", "predict-inputs", "models"),
    "TelegramFunction": ("datasets", "feedback", "feedback-pending", "predict-inputs", "models"),
    "PredictFunction": ("predict-inputs",),
    "NotifierFunction": (),
    "MonitorFunction": (),
    "Trainer": ("models",),
}
AWS_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",  # Session Manager on the trainers; no S3
}
ASYNC_FUNCTIONS = ("SlackFunction", "TelegramFunction", "NotifierFunction", "MonitorFunction")


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return infra.load_template()


@pytest.fixture(scope="module")
def deployed(source: dict[str, Any]) -> dict[str, Any]:
    return infra.translated(source)


# --- what CloudFormation runs -----------------------------------------------------------------------

def test_the_real_sam_transform_accepts_the_template_and_cfn_lint_passes_its_output(deployed) -> None:
    assert "Transform" not in deployed
    assert not any(r["Type"].startswith("AWS::Serverless::") for r in deployed["Resources"].values())
    assert _lint(deployed) == []


def test_the_sam_template_itself_passes_cfn_lint_and_the_serverless_rules() -> None:
    assert _lint(infra.TEMPLATE.read_text()) == []


def test_the_lint_really_runs_the_serverless_rules_and_the_transform_really_refuses(source) -> None:
    """Guards for the two checks above: each fails on a template with a known defect."""
    without_logs = copy.deepcopy(source)
    del without_logs["Resources"]["PredictLogGroup"]
    assert any(m.startswith("WS1004") for m in _lint(infra.translated(without_logs)))
    broken = copy.deepcopy(source)
    broken["Resources"]["SlackFunction"]["Properties"]["Events"]["SlackEvents"]["Properties"]["ApiId"] = \
        {"Ref": "NoSuchApi"}
    with pytest.raises(InvalidDocumentException):
        infra.translated(broken)


def test_every_function_runs_one_architecture_on_a_current_python(deployed) -> None:
    functions = infra.resources_of_type(deployed, "AWS::Lambda::Function")
    assert set(functions) == {"PredictFunction", "SlackFunction", "TelegramFunction", "NotifierFunction",
                              "MonitorFunction"}
    for name, props in functions.items():
        assert props["Architectures"] == ["x86_64"], name  # Globals plus a local list must not become two
        major, minor = (int(x) for x in props["Runtime"].removeprefix("python").split("."))
        assert (major, minor) >= (3, 12), name
    predict = functions["PredictFunction"]
    assert predict["Handler"] == "lambda_predict.handler.handler"
    assert predict["Code"]["S3Key"] == "dist/predict.zip"
    assert {"MLBOT_BACKEND", "MLBOT_BUCKET", "MLBOT_DATASET_TABLE"} <= set(predict["Environment"]["Variables"])


# --- re-deployable ----------------------------------------------------------------------------------

def test_nothing_has_a_fixed_name_so_a_failed_create_or_a_second_stage_never_collides(deployed) -> None:
    for logical_id, resource in deployed["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("TableName", "BucketName", "QueueName", "TopicName", "RoleName", "Name"):
            if key in props and resource["Type"] not in ("AWS::Lambda::Alias",):
                assert "${AWS::StackName}" in _text(props[key]), f"{logical_id}.{key} is fixed: {props[key]}"
        if "FunctionName" in props and resource["Type"] == "AWS::Lambda::Function":
            assert "${AWS::StackName}" in _text(props["FunctionName"]), logical_id
        log_group = props.get("LogGroupName")
        if log_group is not None:
            assert _text(log_group).startswith("/aws/lambda/${"), logical_id  # named after its function


def test_data_survives_sam_delete_but_a_failed_first_create_rolls_back_clean(deployed) -> None:
    kept = {"DatasetBucket", "DatasetTable", "JobTable"}
    for logical_id, resource in deployed["Resources"].items():
        policy = resource.get("DeletionPolicy", "Delete")
        if resource["Type"] == "AWS::Lambda::Version":  # SAM's own choice; versions go with their function
            continue
        assert policy != "Retain", f"{logical_id}: Retain would block a retry after a failed create"
        if logical_id in kept:
            assert policy == "RetainExceptOnCreate", logical_id
    for logical_id in ("MachineStatusTable", "IdempotencyTable"):
        assert deployed["Resources"][logical_id].get("DeletionPolicy", "Delete") == "Delete"


# --- least privilege ----------------------------------------------------------------------------------

def _text(value: Any) -> str:
    """An intrinsic rendered as the string it stands for (`${X.Arn}`, `${X}`), enough to compare ARNs."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
        if fn == "Fn::GetAtt":
            return "${" + ".".join(arg if isinstance(arg, list) else arg.split(".")) + "}"
        if fn == "Ref":
            return "${" + arg + "}"
        if fn == "Fn::Join":
            return arg[0].join(_text(part) for part in arg[1])
    raise AssertionError(f"cannot read {value!r}")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(deployed: dict[str, Any], role: str) -> Iterator[dict[str, Any]]:
    props = deployed["Resources"][role]["Properties"]
    for policy in props.get("Policies", []):
        yield from _listed(policy["PolicyDocument"]["Statement"])
    for arn in props.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn:
            managed = deployed["Resources"][arn["Ref"]]
            assert managed["Type"] == "AWS::IAM::ManagedPolicy"
            yield from _listed(managed["Properties"]["PolicyDocument"]["Statement"])
        else:
            assert _text(arn).replace("${AWS::Partition}", "aws") in AWS_MANAGED, arn


def _role_of(name: str) -> str:
    return "TrainerRole" if name == "Trainer" else f"{name}Role"


def _writes(action: str) -> bool:
    verb = action.split(":", 1)[-1]
    return action in ("*", "s3:*") or verb.startswith(("Put", "Delete", "Restore", "Replicate", "Abort")) \
        or verb.endswith("*")


@pytest.mark.parametrize("name", list(WRITABLE))
def test_no_role_writes_outside_its_own_prefixes(deployed, name: str) -> None:
    allowed = [f"{BUCKET}/{prefix}/*" for prefix in WRITABLE[name]]
    s3_statements = 0
    for statement in _role_statements(deployed, _role_of(name)):
        actions = [a for a in _listed(statement["Action"]) if a.startswith("s3:") or a == "*"]
        if statement["Effect"] != "Allow" or not actions:
            continue
        s3_statements += 1
        resources = [_text(r) for r in _listed(statement["Resource"])]
        assert "*" not in resources and f"{BUCKET}/*" not in resources, (name, statement)
        for action in filter(_writes, actions):
            for resource in resources:
                assert resource in allowed, f"{name} may {action} on {resource}"
        if any(r == BUCKET for r in resources):  # bucket-level: listing only, and only its prefixes
            assert set(actions) <= {"s3:ListBucket", "s3:ListBucketVersions"}, (name, actions)
            prefixes = _listed(statement["Condition"]["StringLike"]["s3:prefix"])
            assert all(p.split("/")[0] in WRITABLE[name] + ("models", "datasets") for p in prefixes), prefixes
    assert s3_statements or name == "MonitorFunction"


def test_chat_functions_never_write_models_or_the_trainer_bundle(deployed) -> None:
    for name in CHAT_FUNCTIONS:
        for statement in _role_statements(deployed, _role_of(name)):
            resources = [_text(r) for r in _listed(statement.get("Resource", []))]
            actions = _listed(statement["Action"])
            if f"{BUCKET}/models/*" in resources:
                assert "s3:PutObject" not in actions, name
            assert not any("/deploy/" in r for r in resources), name


def test_the_bucket_refuses_plain_http_and_deploy_writes_from_the_stacks_roles(deployed) -> None:
    statements = deployed["Resources"]["DatasetBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    tls = [s for s in statements if s["Effect"] == "Deny" and
           s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert tls and tls[0]["Action"] == "s3:*" and tls[0]["Principal"] == "*"
    deploy = [s for s in statements if s["Effect"] == "Deny" and
              [_text(r) for r in _listed(s["Resource"])] == [f"{BUCKET}/deploy/*"]]
    assert deploy and "s3:PutObject" in deploy[0]["Action"]
    assert _text(deploy[0]["Condition"]["ArnLike"]["aws:PrincipalArn"]).endswith(":role/${AWS::StackName}-*")
    template = infra.load_template()
    assert template["Parameters"]["TrainerSourceKey"]["Default"].startswith("deploy/")


# --- deletes that delete --------------------------------------------------------------------------------

def test_replaced_versions_expire_everywhere_in_the_bucket(deployed) -> None:
    rules = deployed["Resources"]["DatasetBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    everywhere = [r for r in rules if not r.get("Prefix") and not r.get("Filter") and r["Status"] == "Enabled"]
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays", 99) <= 1 for r in everywhere)
    assert any(r.get("ExpiredObjectDeleteMarker") for r in everywhere)
    assert any(r.get("Prefix") == "predict-inputs/" and r["ExpirationInDays"] == 1 for r in rules)


# --- watching it ----------------------------------------------------------------------------------------

def test_every_function_logs_to_a_group_that_expires(deployed) -> None:
    groups = infra.resources_of_type(deployed, "AWS::Logs::LogGroup")
    named = {_text(g["LogGroupName"]): g for g in groups.values() if "LogGroupName" in g}
    for name in infra.resources_of_type(deployed, "AWS::Lambda::Function"):
        group = named.get(f"/aws/lambda/${{{name}}}")
        assert group is not None and group["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    for name, props in infra.resources_of_type(deployed, "AWS::Lambda::Function").items():
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"} and env["POWERTOOLS_SERVICE_NAME"], name
    stage = infra.resources_of_type(deployed, "AWS::ApiGatewayV2::Stage")["HttpApiApiGatewayDefaultStage"]
    assert _text(stage["AccessLogSettings"]["DestinationArn"]) == "${HttpApiAccessLogs.Arn}"


def test_every_asynchronous_path_ends_in_the_failure_queue_which_is_alarmed(deployed) -> None:
    resources = deployed["Resources"]
    configs = infra.resources_of_type(deployed, "AWS::Lambda::EventInvokeConfig")
    covered = {c["FunctionName"]["Ref"] for c in configs.values()
               if _text(c["DestinationConfig"]["OnFailure"]["Destination"]) == "${AsyncFailureQueue.Arn}"}
    assert covered == set(ASYNC_FUNCTIONS)
    slack = next(c for c in configs.values() if c["FunctionName"]["Ref"] == "SlackFunction")
    assert slack["Qualifier"] == "live"  # the alias the webhook and Bolt's lazy self-invocations call
    subscription = infra.resources_of_type(deployed, "AWS::SNS::Subscription")["NotifierFunctionTrainingEvents"]
    assert _text(subscription["RedrivePolicy"]["deadLetterTargetArn"]) == "${AsyncFailureQueue.Arn}"
    (rule,) = infra.resources_of_type(deployed, "AWS::Events::Rule").values()
    assert _text(rule["Targets"][0]["DeadLetterConfig"]["Arn"]) == "${AsyncFailureQueue.Arn}"
    alarm = resources["AsyncFailuresAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["AsyncFailureQueue", "QueueName"]}


def test_alarms_cover_errors_throttles_the_queue_and_long_jobs_and_reach_the_alarm_topic(deployed) -> None:
    alarms = infra.resources_of_type(deployed, "AWS::CloudWatch::Alarm")
    functions = set(infra.resources_of_type(deployed, "AWS::Lambda::Function"))
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    for metric in ("Errors", "Throttles"):
        watched = {q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
                   for a in alarms.values() for q in a.get("Metrics", [])
                   if "MetricStat" in q and q["MetricStat"]["Metric"]["MetricName"] == metric}
        assert watched == functions, metric
    by_metric = {a.get("MetricName"): a for a in alarms.values()}
    assert by_metric["OldestQueuedJobMinutes"]["Threshold"] == {"Ref": "MaxQueueWaitMinutes"}
    assert by_metric["LongestRunningJobMinutes"]["Threshold"] == {"Ref": "MaxJobMinutes"}
    namespace = deployed["Resources"]["MonitorFunction"]["Properties"]["Environment"]["Variables"]
    assert by_metric["OldestQueuedJobMinutes"]["Namespace"] == namespace["POWERTOOLS_METRICS_NAMESPACE"]
    assert "5xx" in by_metric
    email = deployed["Resources"]["AlarmEmailSubscription"]
    assert email["Condition"] == "HasAlarmEmail" and email["Properties"]["Protocol"] == "email"


def test_the_slack_function_can_be_kept_warm_by_a_parameter(deployed) -> None:
    alias = infra.resources_of_type(deployed, "AWS::Lambda::Alias")["SlackFunctionAliaslive"]
    assert alias["ProvisionedConcurrencyConfig"]["Fn::If"][0] == "HasSlackWarm"
    assert deployed["Parameters"]["SlackProvisionedConcurrency"]["Default"] == 0
    statements = list(_role_statements(deployed, "SlackFunctionRole"))
    self_invoke = [_text(r) for s in statements if s["Action"] == "lambda:InvokeFunction"
                   for r in _listed(s["Resource"])]
    # Bolt re-invokes context.invoked_function_arn, the alias's qualified ARN when the webhook came through it.
    assert any(r.endswith(":function:${AWS::StackName}-slack:*") for r in self_invoke), self_invoke


def test_the_trainers_credential_is_generated_by_the_stack_and_read_by_who_needs_it(deployed) -> None:
    secret = deployed["Resources"]["TrainerTokenSecret"]["Properties"]["GenerateSecretString"]
    assert secret["GenerateStringKey"] == "MLBOT_TRAINER_TOKEN" and secret["PasswordLength"] >= 32
    for name in CHAT_FUNCTIONS:
        env = deployed["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert env["MLBOT_TRAINER_SECRET_ARN"] == {"Ref": "TrainerTokenSecret"}
        assert "MLBOT_TRAINER_TOKEN" not in env
    user_data = _text(deployed["Resources"]["TrainerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
                      ["UserData"]["Fn::Base64"])
    assert "MLBOT_TRAINER_SECRET_ARN=${TrainerTokenSecret}" in user_data
    readers = {name for name in (*WRITABLE,) for s in _role_statements(deployed, _role_of(name))
               if "secretsmanager:GetSecretValue" in _listed(s["Action"])
               and "${TrainerTokenSecret}" in [_text(r) for r in _listed(s["Resource"])]}
    assert readers == {"SlackFunction", "TelegramFunction", "Trainer"}
