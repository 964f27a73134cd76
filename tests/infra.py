"""Build moto's tables and bucket from template.yaml, the one source of infrastructure shapes.

Call inside ``mock_aws()``. The template leaves table names to CloudFormation (so stacks never collide);
here a table is named after its logical id without "Table" (DatasetTable -> Dataset, the settings'
defaults) unless overridden. Key schemas and attribute definitions are copied as written, never restated.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

import yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
_TABLE_KEYS = (
    "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "LocalSecondaryIndexes"
)


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser where present
    """A safe loader that reads CloudFormation short tags (!Ref, !GetAtt, !Sub...) as dicts."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


_PARSED: dict[tuple[str, int], dict[str, Any]] = {}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data, short tags turned into their long form ({'Ref': ...}): a fresh copy of
    it parsed once per version of the file (every moto test builds its tables and queues from it)."""
    key = (str(path), Path(path).stat().st_mtime_ns)
    if key not in _PARSED:
        with open(path, encoding="utf-8") as handle:
            _PARSED[key] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return copy.deepcopy(_PARSED[key])


def resources_of_type(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Logical id -> Properties of every resource of CloudFormation type ``kind``."""
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == kind
    }


def _resolve(value: Any, template: Mapping[str, Any], logical_id: str) -> str:
    if value is None:  # named by CloudFormation when deployed
        return logical_id.removesuffix("Table")
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        parameter = template.get("Parameters", {}).get(value["Ref"], {})
        if "Default" in parameter:
            return str(parameter["Default"])
    raise ValueError(f"{logical_id}: cannot resolve TableName {value!r} without a deployment")


def create_tables(
    dynamodb: Any, names: Mapping[str, str] | None = None, template: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Create every AWS::DynamoDB::Table of the template; return logical id -> table name.

    ``names`` overrides a table's name by logical id (as a deployment parameter would)."""
    template = load_template() if template is None else template
    created: dict[str, str] = {}
    for logical_id, props in resources_of_type(template, "AWS::DynamoDB::Table").items():
        name = (names or {}).get(logical_id) or _resolve(
            props.get("TableName"), template, logical_id
        )
        spec = {key: props[key] for key in _TABLE_KEYS if key in props}
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        created[logical_id] = name
    return created


def create_bucket(
    s3: Any, name: str, logical_id: str = "DatasetBucket", template: Mapping[str, Any] | None = None
) -> str:
    """Create the bucket ``name`` for the template's ``logical_id``, with its versioning setting."""
    template = load_template() if template is None else template
    props = resources_of_type(template, "AWS::S3::Bucket")[logical_id]
    region = s3.meta.region_name
    if region and region != "us-east-1":  # us-east-1 is the one region that rejects the constraint
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    else:
        s3.create_bucket(Bucket=name)
    versioning = props.get("VersioningConfiguration")
    if versioning:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": versioning["Status"]}
        )
    return name


_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "ReceiveMessageWaitTimeSeconds", "MessageRetentionPeriod")


def create_queues(sqs: Any, template: Mapping[str, Any] | None = None, *, visibility_s: int | None = None,
                  names: Mapping[str, str] | None = None) -> dict[str, str]:
    """Create the template's training queue and dead-letter queue (unconditional AWS::SQS::Queue resources
    whose logical id starts with "Training"), with their visibility timeout and redrive policy as written;
    return logical id -> queue URL. ``visibility_s`` shortens the visibility timeout for tests that wait
    for a redelivery."""
    template = load_template() if template is None else template
    resources = template.get("Resources", {})
    wanted = {lid: r.get("Properties", {}) for lid, r in resources.items()
              if r.get("Type") == "AWS::SQS::Queue" and lid.startswith("Training") and "Condition" not in r}
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    # dead-letter queues first, so a redrive policy can name them
    for logical_id in sorted(wanted, key=lambda lid: "RedrivePolicy" in wanted[lid]):
        props = wanted[logical_id]
        attributes = {k: str(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
        if visibility_s is not None and "RedrivePolicy" in props:
            attributes["VisibilityTimeout"] = str(visibility_s)
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]
            target_id = target["Fn::GetAtt"][0] if isinstance(target, dict) else target
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arns[target_id],
                                                      "maxReceiveCount": int(redrive["maxReceiveCount"])})
        name = (names or {}).get(logical_id) or logical_id
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        urls[logical_id] = url
        arns[logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return urls


def queue_settings(urls: Mapping[str, str]) -> dict[str, Any]:
    """The Settings fields that point the code at the queues create_queues made."""
    return {"queue_urls": {"cpu": urls["TrainingQueue"]}, "dead_letter_url": urls["TrainingDeadLetterQueue"]}


def create_storage(dynamodb: Any, s3: Any, bucket: str = "mlbot-test-datasets") -> dict[str, str]:
    """Tables and bucket in one call: logical id -> physical name for each."""
    template = load_template()
    created = create_tables(dynamodb, template=template)
    created["DatasetBucket"] = create_bucket(s3, bucket, template=template)
    return created



def translated(template: Mapping[str, Any] | None = None, region: str = "us-east-1") -> dict[str, Any]:
    """What CloudFormation deploys: the real SAM transform of the packaged template (tools.deploycheck)."""
    from tools import deploycheck

    return deploycheck.translate(load_template() if template is None else template, region=region)


def deploy(settings: Any, *, visibility_s: int | None = None) -> Any:
    """Tables, bucket (settings.bucket) and training queues for ``settings``, inside moto; returns the settings
    pointed at the queues, as a deployed function's environment would point them."""
    from dataclasses import replace

    from platform_core.adapters.aws import make_boto3_client

    create_storage(make_boto3_client("dynamodb", settings), make_boto3_client("s3", settings), bucket=settings.bucket)
    urls = create_queues(make_boto3_client("sqs", settings), visibility_s=visibility_s)
    return replace(settings, **queue_settings(urls))
