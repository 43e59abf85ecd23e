"""Renames the project: `make rename NAME=<kebab-name>`.

The project's name is the `application` tag in template.yaml's Globals (the one place it
is read from, so renaming twice works). It appears in four spellings, all replaced in
every text file of the repository (build output and virtualenvs excluded):

- kebab-case: stack names (samconfig.toml), the `application` tag on every resource,
  the commands in the docs (`rust-order-pipeline-dev`);
- PascalCase: the CloudWatch metrics namespace (shared/aws-adapters/src/telemetry.rs and the
  dashboard in template.yaml);
- snake_case, should one appear;
- words, in any case: the title of the README and the template's description
  ("Rust order pipeline" becomes "Acme shop", "Rust Order Pipeline" "Acme Shop").

Not renamed: the problem type URIs (`https://order-pipeline.example/problems/...`). They
are part of the API contract that clients branch on, and should move to a domain you
own: see docs/fork.md.

Only the Python standard library.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
# Never rewritten: version control, build output, installed tools.
SKIPPED_DIRS = {".git", ".venv", "target", ".aws-sam", "node_modules", "__pycache__"}


def current_name():
    """The `application` tag of template.yaml's Globals."""
    text = (ROOT / "template.yaml").read_text()
    match = re.search(r"^      application: (\S+)\s*$", text, re.M)
    if match is None:
        raise SystemExit("rename: template.yaml has no `application:` tag in Globals to read the name from")
    return match.group(1)


def spellings(name):
    """The exact spellings of a kebab-case name: kebab, snake and Pascal case."""
    words = name.split("-")
    return [name, "_".join(words), "".join(w.capitalize() for w in words)]


def replace_words(text, old, new):
    """The name as words ("Rust order pipeline"), in any case, in the same case style."""
    old_words, new_words = old.split("-"), new.split("-")

    def styled(match):
        found = match.group(0).split(" ")
        if all(w[:1].isupper() for w in found):
            return " ".join(w.capitalize() for w in new_words)
        if found[0][:1].isupper():
            return " ".join([new_words[0].capitalize(), *new_words[1:]])
        return " ".join(new_words)

    pattern = re.compile(r"\b" + r" ".join(map(re.escape, old_words)) + r"\b", re.IGNORECASE)
    return pattern.sub(styled, text)


def text_files():
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS for part in relative.parts) or not path.is_file():
            continue
        try:
            yield path, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: no names in it


def rename(new):
    old = current_name()
    if not NAME.match(new):
        raise SystemExit(f"rename: {new!r} is not a project name: use kebab-case with at least two words, e.g. acme-shop")
    if new == old:
        raise SystemExit(f"rename: the project is already called {old}")
    pairs = list(zip(spellings(old), spellings(new)))
    changed = []
    for path, text in text_files():
        renamed = text
        for before, after in pairs:
            renamed = renamed.replace(before, after)
        renamed = replace_words(renamed, old, new)
        if renamed != text:
            path.write_text(renamed, encoding="utf-8")
            changed.append(str(path.relative_to(ROOT)))
    return old, changed


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: make rename NAME=<kebab-name>")
    old, changed = rename(sys.argv[1])
    print(f"Renamed {old} to {sys.argv[1]} in {len(changed)} files:")
    for path in changed:
        print(f"  {path}")
    print("Next: check the diff, `make test`, and see docs/fork.md for what is not renamed on purpose.")


if __name__ == "__main__":
    main()
