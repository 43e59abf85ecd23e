"""Translates template.yaml to plain CloudFormation offline, as `sam deploy` would, so
the result can be linted too (the SAM transform adds aliases, versions, CodeDeploy and
event source resources that only exist after translation).

Usage: sam_to_cfn.py template.yaml out.json

The local cloud runs the same translation (local/emulator/src/template.rs, `Template::translate`),
so SAM's rules hold locally as on AWS.

Snippets included with `Fn::Transform: AWS::Include` from a local file (the API's
OpenAPI document) are inlined first, as CloudFormation does after `sam package` has
uploaded them. Offline means: local CodeUri paths become placeholder S3 URIs (what `sam package` would
upload), the pseudo parameters are fixed, and no managed policy is looked up by name
(the template uses none: every function has an explicit role).
"""

import json
import logging
import os
import sys

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


def inline_includes(node, base):
    """Replaces every local-file AWS::Include with the file's content."""
    if isinstance(node, dict):
        transform_ = node.get("Fn::Transform")
        if (
            len(node) == 1
            and isinstance(transform_, dict)
            and transform_.get("Name") == "AWS::Include"
        ):
            location = transform_["Parameters"]["Location"]
            if location.startswith("s3://"):
                raise SystemExit(f"cannot inline {location} offline")
            with open(os.path.join(base, location)) as f:
                return inline_includes(yaml_parse(f.read()), base)
        return {key: inline_includes(value, base) for key, value in node.items()}
    if isinstance(node, list):
        return [inline_includes(item, base) for item in node]
    return node


class NoManagedPolicies:
    """Stands in for the IAM lookup the translator would do with credentials."""

    def load(self):
        return {}


def main(source, target):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # The translator logs feature-toggle chatter that says nothing about the template.
    logging.disable(logging.WARNING)
    with open(source) as f:
        template = yaml_parse(f.read())
    template = inline_includes(template, os.path.dirname(os.path.abspath(source)))
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            properties = resource.setdefault("Properties", {})
            properties["CodeUri"] = f"s3://offline-translation/{name}.zip"
    parameters = {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
    }
    try:
        translated = transform(template, parameters, NoManagedPolicies())
    except InvalidDocumentException as e:
        # The translator's own message names each resource and what is wrong with it.
        raise SystemExit(
            "; ".join(getattr(cause, "message", str(cause)) for cause in e.causes) or str(e)
        ) from None
    with open(target, "w") as f:
        json.dump(translated, f, indent=1)
    print(
        f"{source}: {len(translated['Resources'])} CloudFormation resources -> {target}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
