"""`make lint`: what CloudFormation will run, checked here: aws-sam-translator's real transform of
template.yaml, then cfn-lint (with the serverless rules) on the template and on its translation.

    python -m tools.deploycheck [--out dist/template.translated.json]

cfn-lint 1.x no longer runs the SAM transform itself, so it would pass a template that the transform or
CloudFormation rejects. No AWS call is made: local CodeUris are replaced by S3 URIs as `sam package` does,
and the managed-policy map is empty (the template names AWS managed policies by ARN). Exit 0 when clean.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
SERVERLESS_RULES = "cfn_lint_serverless.rules"


def packaged(template: Mapping[str, Any], bucket: str = "mlbot-artifacts") -> dict[str, Any]:
    """The template as `sam package` uploads it: every local CodeUri replaced by an S3 URI."""
    copy = json.loads(json.dumps(template))
    for resource in copy.get("Resources", {}).values():
        props = resource.get("Properties", {})
        code = props.get("CodeUri")
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(code, str) \
                and not code.startswith("s3://"):
            props["CodeUri"] = f"s3://{bucket}/{code}"
    return copy


def translate(template: Mapping[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    """The SAM transform's output for ``template`` (long-form intrinsics, as json or tests.infra loads it).

    Raises samtranslator's InvalidDocumentException (its ``causes`` say what is wrong), as `sam deploy` would."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translator = Translator({}, Parser(), boto_session=boto3.session.Session(region_name=region))
    return translator.translate(packaged(template), {}, get_managed_policy_map=lambda: {})


def lint(template: Mapping[str, Any] | str, region: str = "us-east-1") -> list[str]:
    """cfn-lint's findings (with the serverless rules) as `RULE message (line N)`; empty when clean."""
    from cfnlint.api import lint as cfn_lint
    from cfnlint.config import ManualArgs

    text = template if isinstance(template, str) else json.dumps(template, indent=1)
    matches = cfn_lint(text, config=ManualArgs(append_rules=[SERVERLESS_RULES], regions=[region]))
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploycheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "template.translated.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from samtranslator.model.exceptions import InvalidDocumentException

    from tests.infra import load_template

    found = {"template.yaml": lint(TEMPLATE.read_text())}
    try:
        deployed = translate(load_template(TEMPLATE))
    except InvalidDocumentException as exc:
        print("the SAM transform refuses template.yaml:")
        for cause in exc.causes:
            print(f"  {cause.message}")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(deployed, indent=1))
    found[str(args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out)] = lint(deployed)
    resources = deployed["Resources"]
    print(f"SAM transform: {len(resources)} CloudFormation resources "
          f"({sum(r['Type'] == 'AWS::Lambda::Function' for r in resources.values())} functions)")
    for name, matches in found.items():
        print(f"cfn-lint + serverless rules, {name}: {'clean' if not matches else f'{len(matches)} finding(s)'}")
        for match in matches:
            print(f"  {match}")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
