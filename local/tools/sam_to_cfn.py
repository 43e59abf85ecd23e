"""Translates template.yaml to plain CloudFormation offline, as `sam deploy` would, so
the result can be linted too (the SAM transform adds aliases, versions, CodeDeploy and
event source resources that only exist after translation).

Usage: sam_to_cfn.py template.yaml out.json

Offline means: local CodeUri paths become placeholder S3 URIs (what `sam package` would
upload), the pseudo parameters are fixed, and no managed policy is looked up by name
(the template uses none: every function has an explicit role).
"""

import json
import logging
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


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
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            properties = resource.setdefault("Properties", {})
            properties["CodeUri"] = f"s3://offline-translation/{name}.zip"
    parameters = {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
    }
    translated = transform(template, parameters, NoManagedPolicies())
    with open(target, "w") as f:
        json.dump(translated, f, indent=1)
    print(f"{source}: {len(translated['Resources'])} CloudFormation resources -> {target}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
