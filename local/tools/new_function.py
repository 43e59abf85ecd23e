"""Scaffolds a function the way the existing ones are built: `make new-function NAME=x TRIGGER=sqs|http`.

Everything it writes is a template in local/tools/new-function/ (`common/` for both
triggers, `sqs/`, `http/`): change those to change what it generates. This script fills
in their `{{placeholders}}` (see `placeholders`) and puts each in its place: `crate/`
becomes functions/<name>/ (the `.tmpl` suffix dropped), `event.json.tmpl`
events/<name>.json, `openapi.yaml.before-components.tmpl` the route in docs/openapi.yaml,
`next.txt.tmpl` what it prints last, and each `template.yaml.<place>.tmpl` goes into
template.yaml at its place (see PLACES), as text, so every comment and the formatting
stay. Then docs/best-practices.md follows the moved lines (`make best-practices`).
A refusal writes nothing. Only the standard library: it runs before anything is installed.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent / "new-function"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import refresh_best_practices  # noqa: E402 (a sibling script, found through sys.path)

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Names cargo or Rust would refuse or confuse: the workspace's own packages and bins,
# Rust's built-in crates and keywords (the library is imported as `name_with_underscores`).
RESERVED = {
    "shared", "domain", "aws-adapters", "local", "tests", "integration-tests", "emulator", "lambda-host", "proving",
    "redrive", "hello-floor", "std", "core",
    "alloc", "proc-macro", "proc_macro", "test", "self", "super", "crate", "as", "async", "await", "break", "const",
    "continue", "dyn", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match",
    "mod", "move", "mut", "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro", "override", "priv", "try",
    "typeof", "unsized", "virtual", "yield",
}
# What the sqs stub subscribes to: HANDLED in its lib.rs and its FilterPolicy.
EVENT_TYPE = "OrderPlaced"
RESOURCE = r"^  ([A-Za-z0-9]+):\s*$"  # a resource (or output) id: two spaces in, nothing after


class ScaffoldError(Exception):
    """A refusal with a message for the person who ran the command."""


# ---------------------------------------------------------------- templates


def placeholders(name, application):
    """Every spelling of the name the templates use (for loyalty-points: loyalty_points,
    LoyaltyPoints, loyaltyPoints, Loyalty points), so no template has to derive one."""
    words = name.split("-")
    pascal = "".join(word.capitalize() for word in words)
    return {
        "name": name, "crate": "_".join(words), "Pascal": pascal, "camel": pascal[:1].lower() + pascal[1:],
        "title": " ".join([words[0].capitalize(), *words[1:]]),
        "event_type": EVENT_TYPE, "application": application,
    }


def render(path, values):
    """A template's text with its `{{placeholders}}` filled in; a misspelt one is an error, not a gap."""
    def fill(match):
        if match.group(1) not in values:
            raise ScaffoldError(f"{path.relative_to(ROOT)} has an unknown placeholder {match.group(0)}")
        return values[match.group(1)]

    return re.sub(r"\{\{(\w+)\}\}", fill, path.read_text())


def fragments(trigger, values):
    """The template.yaml fragments of a trigger (and the common ones), by place."""
    found = {}
    for folder in (TEMPLATES / "common", TEMPLATES / trigger):
        for path in sorted(folder.glob("template.yaml.*.tmpl")):
            place = path.name[len("template.yaml."):-len(".tmpl")]
            if place not in PLACES:
                raise ScaffoldError(f"{path.relative_to(ROOT)}: no place {place!r} in new_function.PLACES")
            found[place] = render(path, values)
    return found


# ---------------------------------------------------------------- checks


def check_name(name, template_text, values):
    """Refuses a name cargo, Rust or the template would reject or confuse, before anything is written."""
    if not NAME.match(name) or len(name) > 40:
        raise ScaffoldError(f"{name!r} is not a function name: use kebab-case, a letter first, then letters, "
                            "digits and single dashes (e.g. loyalty-points), at most 40 characters")
    if name in RESERVED or name.replace("-", "_") in RESERVED:
        raise ScaffoldError(f"{name!r} is reserved (a workspace package, a Rust crate or keyword); pick another")
    if (ROOT / "functions" / name).exists():
        raise ScaffoldError(f"functions/{name} already exists")
    if (ROOT / "events" / f"{name}.json").exists():
        raise ScaffoldError(f"events/{name}.json already exists")
    # The ids either trigger would add, so an sqs function and an http one never share a name.
    ours = {i for trigger in ("sqs", "http") for text in fragments(trigger, values).values()
            for i in re.findall(RESOURCE, text, re.M)}
    clashes = sorted(ours & set(re.findall(RESOURCE, template_text, re.M)))
    if clashes:
        raise ScaffoldError(f"template.yaml already has {', '.join(clashes)}: {name!r} is taken")
    if re.search(rf"^\s+Binary: {re.escape(name)}\s*$", template_text, re.M):
        raise ScaffoldError(f"a function in template.yaml already builds the binary {name!r}")


# ---------------------------------------------------------------- template.yaml editing
#
# The template is edited as lines. A resource block starts at a two-space-indented key
# and ends before the next one (or a comment at that indent, or a top-level section).


def find(lines, pattern, start=0, last=False):
    """The first (or last) line from `start` matching `pattern`; an anchor gone missing is a refusal, not a wrong edit."""
    found = [i for i in range(start, len(lines)) if re.search(pattern, lines[i])]
    if not found:
        raise ScaffoldError(f"template.yaml has no line matching {pattern!r}; was it restructured?")
    return found[-1] if last else found[0]


def block_end(lines, start):
    """The index after the resource (or output) block starting at `start`, before its blank lines."""
    i = start + 1
    while i < len(lines) and not re.match(r"^  [A-Za-z#]|^[A-Za-z]", lines[i]):
        i += 1
    while lines[i - 1].strip() == "":
        i -= 1
    return i


def resource_start(lines, resource_id):
    """The line that opens a resource."""
    return find(lines, rf"^  {re.escape(resource_id)}:\s*$")


def functions(lines):
    """The functions' logical ids in file order: the new one joins them."""
    ids = [lines[i].strip().rstrip(":") for i in range(len(lines) - 1)
           if re.match(RESOURCE, lines[i]) and lines[i + 1].strip() == "Type: AWS::Serverless::Function"]
    if not ids:
        raise ScaffoldError("template.yaml has no AWS::Serverless::Function to put the new one beside")
    return ids


def roles(lines):
    """The start of each function's role, in the functions' order: the new role joins them."""
    role = r"^      Role: !GetAtt (\S+)\.Arn"
    ids = [re.match(role, lines[find(lines, role, resource_start(lines, f))]).group(1) for f in functions(lines)]
    return [resource_start(lines, i) for i in ids]


def insert_before(lines, start, text):
    """Inserts `text` as its own paragraph before the resource at `start` and the comment above it."""
    while start > 0 and lines[start - 1].startswith("  #"):
        start -= 1
    lines[start:start] = ([""] if lines[start - 1].strip() else []) + text.rstrip("\n").split("\n") + [""]


def insert_after(lines, start, text):
    """Inserts `text` after the resource (or output) at `start`, a blank line between them."""
    end = block_end(lines, start)
    lines[end:end] = [""] + text.rstrip("\n").split("\n")


def add_metric(lines, pattern, text):
    """Appends a metric to the dashboard widget whose metrics line matches `pattern`."""
    i = find(lines, pattern)
    lines[i] = re.sub(r"\]\]\}\},$", lambda _: f"], {text.strip()}]}}}},", lines[i])


def add_dashboard_variables(lines, text):
    """Adds lines to the variables of the dashboard's !Sub (the list item after its body)."""
    end = find(lines, r"^        - ApiName: ") + 1
    while end < len(lines) and lines[end].startswith("          ") and lines[end].strip():
        end += 1
    lines[end:end] = text.rstrip("\n").split("\n")


def add_to_queue_policy(lines, policy, header, text):
    """Appends one item per line of `text` to every `header` list of the queue policy `policy`."""
    start = resource_start(lines, policy)
    headers = [i for i in range(start, block_end(lines, start)) if lines[i].strip() == header]
    for i in reversed(headers):  # bottom up, so the earlier headers keep their index
        j = i + 1
        while lines[j].lstrip().startswith("- "):
            j += 1
        indent = lines[i + 1][: len(lines[i + 1]) - len(lines[i + 1].lstrip())]
        lines[j:j] = [f"{indent}- {item}" for item in text.split("\n") if item]


# Where each `template.yaml.<place>.tmpl` goes, in the order they are put in (each finds
# its anchor again, so the earlier insertions move nothing it relies on).
PLACES = {
    "after-dlq-outputs": lambda lines, text: insert_after(
        lines, find(lines, r"^  \w+DeadLetterQueueUrl:\s*$", last=True), text),
    "after-dlq-alarms": lambda lines, text: insert_after(
        lines, find(lines, r"^  \w+DeadLetterQueueDepthAlarm:\s*$", last=True), text),
    "errors-widget": lambda lines, text: add_metric(lines, r'"metrics": \[\["AWS/Lambda", "Errors", "FunctionName"', text),
    "dlq-widget": lambda lines, text: add_metric(
        lines, r'"metrics": \[\["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"', text),
    "dashboard-variables": add_dashboard_variables,
    "after-roles": lambda lines, text: insert_after(lines, roles(lines)[-1], text),
    "before-roles": lambda lines, text: insert_before(lines, roles(lines)[0], text),
    "after-functions": lambda lines, text: insert_after(lines, resource_start(lines, functions(lines)[-1]), text),
    "queue-policy-queues": lambda lines, text: add_to_queue_policy(lines, "ConsumerQueuesPolicy", "Queues:", text),
    "queue-policy-resources": lambda lines, text: add_to_queue_policy(lines, "ConsumerQueuesPolicy", "Resource:", text),
    "dlq-policy-queues": lambda lines, text: add_to_queue_policy(lines, "DeadLetterQueuesPolicy", "Queues:", text),
    "dlq-policy-resources": lambda lines, text: add_to_queue_policy(lines, "DeadLetterQueuesPolicy", "Resource:", text),
    "before-queue-policy": lambda lines, text: insert_before(lines, resource_start(lines, "ConsumerQueuesPolicy"), text),
}


def edit_template(text, trigger, values):
    """template.yaml with the trigger's fragments in their places."""
    lines = text.split("\n")
    found = fragments(trigger, values)
    for place, put in PLACES.items():
        if place in found:
            put(lines, found[place])
    return "\n".join(lines)


def edit_openapi(text, trigger, values):
    """docs/openapi.yaml with the route before `components:`: API Gateway is built from it."""
    route = TEMPLATES / trigger / "openapi.yaml.before-components.tmpl"
    if not route.exists():
        return None
    if f"\n  /{values['name']}:\n" in text:
        raise ScaffoldError(f"docs/openapi.yaml already has the path /{values['name']}")
    index = text.find("\ncomponents:\n")
    if index < 0:
        raise ScaffoldError("docs/openapi.yaml has no top-level `components:` to put the route before")
    return text[: index + 1] + render(route, values) + "\n" + text[index + 1 :]


# ---------------------------------------------------------------- main


def scaffold(name, trigger):
    """Checks and renders everything first, then writes: a refusal leaves the repository untouched."""
    template_path, openapi_path = ROOT / "template.yaml", ROOT / "docs/openapi.yaml"
    template = template_path.read_text()
    lines = template.split("\n")
    # The project's name as the Globals tag it: the one place the scaffold reads it from.
    application = lines[find(lines, r"^      application: \S+")].split(":", 1)[1].strip()
    values = placeholders(name, application)
    check_name(name, template, values)
    folder = TEMPLATES / trigger
    edits = {
        template_path: edit_template(template, trigger, values),
        ROOT / "events" / f"{name}.json": render(folder / "event.json.tmpl", values),
    }
    route = edit_openapi(openapi_path.read_text(), trigger, values)
    if route is not None:
        edits[openapi_path] = route
    crate = ROOT / "functions" / name
    for path in sorted((folder / "crate").rglob("*.tmpl")):
        edits[crate / str(path.relative_to(folder / "crate")).removesuffix(".tmpl")] = render(path, values)
    for path, text in edits.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    refresh_best_practices.main()
    format_rust(sorted(crate.rglob("*.rs")))
    print(f"Scaffolded {name} ({trigger}). Written or edited:")
    for path in sorted(str(path.relative_to(ROOT)) for path in edits):
        print(f"  {path}")
    print(render(folder / "next.txt.tmpl", values), end="")


def format_rust(files):
    """rustfmt the generated Rust: a long name can rewrap a line, and `cargo fmt --check` must agree."""
    rustfmt = shutil.which("rustfmt")
    if rustfmt is None:
        print("new-function: rustfmt not found; run `make fmt` before `make test`", file=sys.stderr)
        return
    subprocess.run([rustfmt, "--edition", "2024", *map(str, files)], check=True)


def main():
    """The command line: a refusal is exit code 2 and a message, with nothing written."""
    parser = argparse.ArgumentParser(description="Scaffold a new function: crate, template resources, sample event, checks.")
    parser.add_argument("name", help="kebab-case name, e.g. loyalty-points")
    parser.add_argument("trigger", choices=["sqs", "http"], help="sqs: consumes order events; http: a route on OrdersApi")
    args = parser.parse_args()
    try:
        scaffold(args.name, args.trigger)
    except ScaffoldError as error:
        print(f"new-function: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
