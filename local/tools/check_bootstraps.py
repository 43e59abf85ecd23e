"""Checks a `sam build` output: one bootstrap per function of the template, each an
arm64 (aarch64) Linux executable, as Lambda's provided.al2023 arm64 runtime needs.

Usage: check_bootstraps.py template.yaml build-dir
"""

import os
import struct
import sys

from samtranslator.yaml_helper import yaml_parse

EM_AARCH64 = 0xB7


def main(template_path, build_dir):
    with open(template_path) as f:
        template = yaml_parse(f.read())
    functions = [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    ]
    problems = []
    for name in functions:
        path = os.path.join(build_dir, name, "bootstrap")
        if not os.path.exists(path):
            problems.append(f"{name}: no bootstrap at {path}")
            continue
        with open(path, "rb") as f:
            header = f.read(20)
        machine = struct.unpack_from("<H", header, 18)[0] if header[:4] == b"\x7fELF" else None
        size = os.path.getsize(path)
        if machine != EM_AARCH64:
            problems.append(f"{name}: {path} is not an aarch64 ELF executable")
        else:
            print(f"{name:<24} arm64 bootstrap, {size / 1e6:.1f} MB")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"{len(functions)} functions, {len(functions)} arm64 bootstraps")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
