"""Scaffolds a new function the way the existing ones are built: `make new-function NAME=x TRIGGER=sqs|http`.

It writes the crate (functions/<name>/), its sample event (events/<name>.json), and
inserts its resources into template.yaml next to their siblings (text insertion at
anchors, so every comment and the formatting stay as they are). Then it registers the
function with the checks every function must pass, so `make test` stays green:

- template.yaml: the function (Globals apply: arm64, `live` alias), its log group,
  errors and throttles alarms (the errors alarm is the canary's rollback trigger), a
  least-privilege role granting only what the stub uses, and on the dashboard.
  For `sqs`: a queue with its DLQ, an SNS subscription to the order-events topic with
  a filter policy and its own DLQ, both in `ConsumerQueuesPolicy`, DLQ depth alarms and
  an output. For `http`: an `Api` event on `OrdersApi`.
- docs/openapi.yaml (http): the route, since API Gateway is built from that file.
- tests/Cargo.toml and tests/integration/least_privilege.rs: the crate's
  `AWS_PERMISSIONS`, which the least-privilege test compares with the role.
- docs/best-practices.md: its line ranges follow the moved lines (`make best-practices`).

Only the Python standard library: it runs before anything is installed.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import refresh_best_practices  # noqa: E402 (a sibling script, found through sys.path)

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Names cargo or Rust would refuse or confuse: the workspace's own packages and bins,
# Rust's built-in crates and keywords (the library is imported as `name_with_underscores`).
RESERVED = {
    "shared", "domain", "aws-adapters", "local", "tests", "integration-tests", "emulator", "redrive",
    "std", "core", "alloc", "proc-macro", "proc_macro", "test", "self", "super", "crate",
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
}
# What the sqs stub subscribes to; the code's HANDLED list says the same.
SQS_EVENT_TYPE = "OrderPlaced"


class ScaffoldError(Exception):
    """A refusal with a message for the person who ran the command."""


def pascal(name):
    return "".join(word.capitalize() for word in name.split("-"))


def title(name):
    words = name.split("-")
    return " ".join([words[0].capitalize(), *words[1:]])


# ---------------------------------------------------------------- checks


def check_name(name, template_text):
    if not NAME.match(name) or len(name) > 40:
        raise ScaffoldError(
            f"{name!r} is not a function name: use kebab-case, a letter first, "
            "then letters, digits and single dashes (e.g. loyalty-points), at most 40 characters"
        )
    if name in RESERVED or name.replace("-", "_") in RESERVED:
        raise ScaffoldError(f"{name!r} is reserved (a workspace package, a Rust crate or keyword); pick another")
    if (ROOT / "functions" / name).exists():
        raise ScaffoldError(f"functions/{name} already exists")
    taken = set(re.findall(r"^  ([A-Za-z0-9]+):\s*$", template_text, re.M))
    clashes = sorted(r for r in resource_ids(name, "sqs") | resource_ids(name, "http") if r in taken)
    if clashes:
        raise ScaffoldError(f"template.yaml already has {', '.join(clashes)}: {name!r} is taken")
    if re.search(rf"^\s+Binary: {re.escape(name)}\s*$", template_text, re.M):
        raise ScaffoldError(f"a function in template.yaml already builds the binary {name!r}")


def resource_ids(name, trigger):
    p = pascal(name)
    ids = {f"{p}Function", f"{p}LogGroup", f"{p}ErrorsAlarm", f"{p}ThrottlesAlarm", f"{p}Role"}
    if trigger == "sqs":
        ids |= {
            f"{p}Queue", f"{p}DeadLetterQueue", f"{p}SubscriptionDeadLetterQueue",
            f"{p}Subscription", f"{p}DeadLetterQueueDepthAlarm",
            f"{p}SubscriptionDeadLetterQueueDepthAlarm",
        }
    return ids


# ---------------------------------------------------------------- template.yaml editing
#
# The template is edited as lines. A resource block starts at a two-space-indented key
# and ends before the next one (or a comment at that indent, or a top-level section).


def find(lines, pattern, start=0):
    regex = re.compile(pattern)
    for i in range(start, len(lines)):
        if regex.search(lines[i]):
            return i
    raise ScaffoldError(f"template.yaml has no line matching {pattern!r}; was it restructured?")


def block_end(lines, start):
    """The index after the resource (or output) block starting at `start`."""
    i = start + 1
    while i < len(lines):
        line = lines[i]
        if re.match(r"^  [A-Za-z#]", line) or re.match(r"^[A-Za-z]", line):
            break
        i += 1
    while lines[i - 1].strip() == "":
        i -= 1
    return i


def comment_start(lines, index):
    """The first line of the comment block directly above `index` (or `index`)."""
    while index > 0 and lines[index - 1].startswith("  #"):
        index -= 1
    return index


def resource_start(lines, resource_id):
    return find(lines, rf"^  {re.escape(resource_id)}:\s*$")


def ids_of_type(lines, kind):
    """Logical ids of the resources of a type, in file order."""
    ids = []
    for i, line in enumerate(lines):
        match = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if match and i + 1 < len(lines) and lines[i + 1].strip() == f"Type: {kind}":
            ids.append(match.group(1))
    return ids


def insert(lines, index, block):
    """Inserts a block (text ending in a newline) as its own paragraph at `index`."""
    new = block.rstrip("\n").split("\n")
    lines[index:index] = ([""] if lines[index - 1].strip() else []) + new + [""]


def insert_after_block(lines, start, block):
    end = block_end(lines, start)
    lines[end:end] = [""] + block.rstrip("\n").split("\n")


def append_to_list(lines, start, end, header, item):
    """Appends `item` to every YAML list under `header` between lines start and end."""
    i = start
    while i < end:
        if lines[i].strip() == header:
            j = i + 1
            while j < end and lines[j].lstrip().startswith("- "):
                j += 1
            indent = lines[i + 1][: len(lines[i + 1]) - len(lines[i + 1].lstrip())]
            lines.insert(j, f"{indent}- {item}")
            end += 1
            i = j
        i += 1
    return end


def tags_block(application, indent):
    pad = " " * indent
    return (
        f"{pad}Tags:\n"
        f"{pad}  - Key: application\n{pad}    Value: {application}\n"
        f"{pad}  - Key: environment\n{pad}    Value: !Ref Environment\n"
        f"{pad}  - Key: cost-centre\n{pad}    Value: !Ref CostCentre\n"
    )


QUEUE_SKIP = """    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_27
            comment: "SSE-SQS (SqsManagedSseEnabled) encrypts at rest; a customer key would need a key policy for SNS and every consumer, for no gain in this sample"
"""

FUNCTION_SKIPS = """    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: {name}
      checkov:
        skip:
          - id: CKV_AWS_116
            comment: "a function DLQ only catches asynchronous invokes; these run from the API (sync) or event source mappings, whose queues and stream destination have DLQs"
          - id: CKV_AWS_117
            comment: "the functions call only AWS APIs over TLS; a VPC would add NAT or endpoint cost and cold-start time for no isolation gain"
          - id: CKV_AWS_115
            comment: "concurrency is bounded where a downstream needs it (payment mapping MaximumConcurrency, API throttling); reserved concurrency fails in new accounts with a low quota"
          - id: CKV_AWS_173
            comment: "the environment holds only resource names, never secrets (the gateway key comes from Secrets Manager); Lambda encrypts it at rest"
"""


def queue_resources(name, p, application):
    tags = tags_block(application, 6)
    dlq = f"    Type: AWS::SQS::Queue\n{QUEUE_SKIP}    Properties:\n      MessageRetentionPeriod: 1209600\n      SqsManagedSseEnabled: true\n{tags}"
    return (
        f"  # {p}: its queue, the queue's DLQ (poison and exhausted messages) and the DLQ of\n"
        f"  # its subscription (messages SNS could not deliver to the queue).\n"
        f"  {p}DeadLetterQueue:\n{dlq}\n"
        f"  {p}SubscriptionDeadLetterQueue:\n{dlq}\n"
        f"  {p}Queue:\n    Type: AWS::SQS::Queue\n{QUEUE_SKIP}    Properties:\n"
        f"      # At least 6x the consumer's timeout, so a message is not redelivered while a\n"
        f"      # batch (and its retries inside the SDK) may still be working on it.\n"
        f"      VisibilityTimeout: 60\n      MessageRetentionPeriod: 345600\n      SqsManagedSseEnabled: true\n"
        f"      RedrivePolicy:\n        deadLetterTargetArn: !GetAtt {p}DeadLetterQueue.Arn\n        maxReceiveCount: 5\n{tags}\n"
        f"  {p}Subscription:\n    Type: AWS::SNS::Subscription\n    Properties:\n"
        f"      TopicArn: !Ref OrderEventsTopic\n      Protocol: sqs\n      Endpoint: !GetAtt {p}Queue.Arn\n"
        f"      RawMessageDelivery: true\n"
        f"      # Filtering at the subscription: the function never sees events it does not handle.\n"
        f"      # Keep this list equal to HANDLED in functions/{name}/src/lib.rs.\n"
        f"      FilterPolicy:\n        type: [{SQS_EVENT_TYPE}]\n"
        f"      RedrivePolicy:\n        deadLetterTargetArn: !GetAtt {p}SubscriptionDeadLetterQueue.Arn\n"
    )


def function_resource(name, p, trigger):
    head = f"  {p}Function:\n    Type: AWS::Serverless::Function\n{FUNCTION_SKIPS.format(name=name)}    Properties:\n      CodeUri: .\n"
    if trigger == "http":
        head += (
            "      # Client-facing: fail fast, far below API Gateway's 29 s limit (docs/sizing.md).\n"
            "      Timeout: 5\n"
        )
    body = (
        f"      LoggingConfig:\n        LogFormat: JSON\n        ApplicationLogLevel: !Ref LogLevel\n"
        f"        SystemLogLevel: INFO\n        LogGroup: !Ref {p}LogGroup\n"
        f"      # Canary: 10% of traffic for 5 minutes, rolled back if the errors alarm fires.\n"
        f"      DeploymentPreference:\n        Type: Canary10Percent5Minutes\n        Alarms:\n"
        f"          - !Ref {p}ErrorsAlarm\n"
    )
    if trigger == "sqs":
        return head + body + (
            f"      Description: {name} - handles {SQS_EVENT_TYPE} events; scaffolded, say here what it does.\n"
            f"      Environment:\n        Variables:\n          DEAD_LETTER_QUEUE_URL: !Ref {p}DeadLetterQueue\n"
            f"      Role: !GetAtt {p}Role.Arn\n      Events:\n        {p}Events:\n          Type: SQS\n"
            f"          Properties:\n            Queue: !GetAtt {p}Queue.Arn\n            BatchSize: 10\n"
            f"            MaximumBatchingWindowInSeconds: 1\n            FunctionResponseTypes:\n"
            f"              - ReportBatchItemFailures\n"
        )
    return head + body + (
        f"      Description: GET /{name} - scaffolded, say here what it answers.\n"
        f"      Role: !GetAtt {p}Role.Arn\n      Events:\n        {p}:\n          Type: Api\n"
        f"          Properties:\n            RestApiId: !Ref OrdersApi\n            Path: /{name}\n"
        f"            Method: GET\n"
    )


def alarm(p, kind, description, period):
    return (
        f"  {p}{kind}Alarm:\n    Type: AWS::CloudWatch::Alarm\n    Properties:\n"
        f"      AlarmDescription: {description}\n      Namespace: AWS/Lambda\n      MetricName: {kind}\n"
        f"      Dimensions:\n        - Name: FunctionName\n          Value: !Ref {p}Function\n"
        f"      Statistic: Sum\n      Period: {period}\n      EvaluationPeriods: 1\n      Threshold: 1\n"
        f"      ComparisonOperator: GreaterThanOrEqualToThreshold\n      TreatMissingData: notBreaching\n"
        f"      AlarmActions:\n        - !Ref AlarmTopic\n"
    )


def log_group_and_alarms(name, p, application):
    return (
        f"  {p}LogGroup:\n    Type: AWS::Logs::LogGroup\n    Metadata:\n      checkov:\n        skip:\n"
        f"          - id: CKV_AWS_158\n"
        f'            comment: "CloudWatch Logs encrypts every log group at rest; the functions log no secrets (a test checks), so a customer key adds cost only"\n'
        f'    Properties:\n      LogGroupName: !Sub "/aws/lambda/${{AWS::StackName}}/{name}"\n'
        f"      RetentionInDays: !Ref LogRetentionDays\n{tags_block(application, 6)}\n"
        + alarm(p, "Errors", f"{name} invocations fail (also the canary's rollback trigger).", 60)
        + "\n"
        + alarm(p, "Throttles", f"{name} invocations are throttled.", 300)
    )


def role(p, trigger, application):
    statements = ""
    if trigger == "sqs":
        statements = (
            f"              - Effect: Allow\n                Action:\n                  - sqs:SendMessage\n"
            f"                Resource:\n                  - !GetAtt {p}DeadLetterQueue.Arn\n"
            f"              - Effect: Allow\n                Action:\n                  - sqs:DeleteMessage\n"
            f"                  - sqs:GetQueueAttributes\n                  - sqs:ReceiveMessage\n"
            f"                Resource:\n                  - !GetAtt {p}Queue.Arn\n"
        )
    return (
        f"  # {p}: exactly the calls its code makes, on exactly its resources (checked by\n"
        f"  # tests/integration/least_privilege.rs against functions/*/src/wiring.rs).\n"
        f"  {p}Role:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument:\n"
        f'        Version: "2012-10-17"\n        Statement:\n          - Effect: Allow\n            Principal:\n'
        f"              Service: lambda.amazonaws.com\n            Action: sts:AssumeRole\n"
        f"      Policies:\n        - PolicyName: least-privilege\n          PolicyDocument:\n"
        f'            Version: "2012-10-17"\n            Statement:\n'
        + statements
        + f"              - Effect: Allow\n                Action:\n                  - logs:CreateLogStream\n"
        f"                  - logs:PutLogEvents\n                Resource:\n                  - !GetAtt {p}LogGroup.Arn\n"
        f'              # X-Ray accepts no narrower resource than "*".\n'
        f"              - Effect: Allow\n                Action:\n                  - xray:PutTelemetryRecords\n"
        f'                  - xray:PutTraceSegments\n                Resource: "*"\n'
        + tags_block(application, 6)
    )


def dlq_alarm(queue):
    return (
        f"  {queue}DepthAlarm:\n    Type: AWS::CloudWatch::Alarm\n    Properties:\n"
        f"      AlarmDescription: Messages are waiting in {queue}; see docs/architecture.md for the redrive.\n"
        f"      Namespace: AWS/SQS\n      MetricName: ApproximateNumberOfMessagesVisible\n"
        f"      Dimensions:\n        - Name: QueueName\n          Value: !GetAtt {queue}.QueueName\n"
        f"      Statistic: Maximum\n      Period: 60\n      EvaluationPeriods: 1\n      Threshold: 1\n"
        f"      ComparisonOperator: GreaterThanOrEqualToThreshold\n      TreatMissingData: notBreaching\n"
        f"      AlarmActions:\n        - !Ref AlarmTopic\n"
    )


def application_tag(lines):
    """The project's name as the Globals tag it: the one place the scaffold reads it from."""
    line = lines[find(lines, r"^      application: \S+")]
    return line.split(":", 1)[1].strip()


def add_to_dashboard(lines, p, trigger):
    """Adds the function to the errors widget and (sqs) its DLQ to the depth widget."""
    i = find(lines, r'"metrics": \[\["AWS/Lambda", "Errors", "FunctionName"')
    lines[i] = re.sub(r"\]\]\}\},$", f'], ["...", "${{{p}Function}}"]]}}}},', lines[i])
    if trigger != "sqs":
        return
    i = find(lines, r'"metrics": \[\["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"')
    lines[i] = re.sub(r"\]\]\}\},$", f'], ["...", "${{{p}Dlq}}"]]}}}},', lines[i])
    # The variables of the dashboard's !Sub: the list item after the body.
    start = find(lines, r"^        - ApiName: ")
    end = start + 1
    while end < len(lines) and lines[end].startswith("          ") and lines[end].strip():
        end += 1
    lines.insert(end, f"          {p}Dlq: !GetAtt {p}DeadLetterQueue.QueueName")


def edit_template(text, name, trigger):
    lines = text.split("\n")
    p = pascal(name)
    application = application_tag(lines)
    functions = ids_of_type(lines, "AWS::Serverless::Function")
    if not functions:
        raise ScaffoldError("template.yaml has no AWS::Serverless::Function to put the new one beside")
    roles = []
    for function in functions:
        start = resource_start(lines, function)
        role_line = find(lines, r"^      Role: !GetAtt \S+\.Arn", start)
        roles.append(lines[role_line].split("!GetAtt ")[1].rsplit(".", 1)[0])

    # From the bottom up, so earlier anchors keep their line numbers.
    if trigger == "sqs":
        # Outputs: after the last DLQ URL.
        outputs = [i for i, line in enumerate(lines) if re.match(r"^  \w+DeadLetterQueueUrl:\s*$", line)]
        if outputs:
            insert_after_block(
                lines,
                outputs[-1],
                f"  {p}DeadLetterQueueUrl:\n    Description: {title(name)} events that could not be processed.\n"
                f"    Value: !Ref {p}DeadLetterQueue\n",
            )
        # The DLQ alarms: after the last one.
        depth = [i for i, line in enumerate(lines) if re.match(r"^  \w+DeadLetterQueueDepthAlarm:\s*$", line)]
        if not depth:
            raise ScaffoldError("template.yaml has no *DeadLetterQueueDepthAlarm to put the new ones beside")
        insert_after_block(lines, depth[-1], dlq_alarm(f"{p}DeadLetterQueue") + "\n" + dlq_alarm(f"{p}SubscriptionDeadLetterQueue"))
    add_to_dashboard(lines, p, trigger)

    # The role: after the last function's role.
    insert_after_block(lines, resource_start(lines, roles[-1]), role(p, trigger, application))
    # Log group and alarms: before the first function's role (and its comment).
    insert(lines, comment_start(lines, resource_start(lines, roles[0])), log_group_and_alarms(name, p, application))
    # The function: after the last function.
    insert_after_block(lines, resource_start(lines, functions[-1]), function_resource(name, p, trigger))

    if trigger == "sqs":
        policy = resource_start(lines, "ConsumerQueuesPolicy")
        end = block_end(lines, policy)
        end = append_to_list(lines, policy, end, "Queues:", f"!Ref {p}Queue")
        end = append_to_list(lines, policy, end, "Queues:", f"!Ref {p}SubscriptionDeadLetterQueue")
        end = append_to_list(lines, policy, end, "Resource:", f"!GetAtt {p}Queue.Arn")
        append_to_list(lines, policy, end, "Resource:", f"!GetAtt {p}SubscriptionDeadLetterQueue.Arn")
        # The queues: before the policy that lets the topic deliver to them.
        insert(lines, comment_start(lines, policy), queue_resources(name, p, application))
    return "\n".join(lines)


# ---------------------------------------------------------------- the other files


def edit_openapi(text, name, p):
    route = (
        f"  /{name}:\n"
        f"    get:\n"
        f"      operationId: {p[0].lower() + p[1:]}\n"
        f"      summary: Scaffolded by make new-function; say what it answers\n"
        f"      security:\n        - sigv4: []\n"
        f"      parameters:\n        - $ref: \"#/components/parameters/CorrelationId\"\n"
        f"      responses:\n"
        f"        \"200\":\n          description: The function's answer.\n"
        f"          headers:\n            X-Correlation-Id:\n              $ref: \"#/components/headers/CorrelationId\"\n"
        f"          content:\n            application/json:\n              schema:\n"
        f"                type: object\n                required: [function, correlation_id]\n"
        f"                properties:\n                  function:\n                    type: string\n"
        f"                  correlation_id:\n                    type: string\n"
        f"      x-amazon-apigateway-integration:\n        type: aws_proxy\n        httpMethod: POST\n"
        f"        passthroughBehavior: when_no_match\n        uri:\n"
        f"          Fn::Sub: arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{{p}FunctionAliaslive}}/invocations\n"
        f"\n"
    )
    if f"\n  /{name}:\n" in text:
        raise ScaffoldError(f"docs/openapi.yaml already has the path /{name}")
    index = text.find("\ncomponents:\n")
    if index < 0:
        raise ScaffoldError("docs/openapi.yaml has no top-level `components:` to put the route before")
    return text[: index + 1] + route + text[index + 1 :]


def edit_tests_manifest(text, name):
    lines = text.split("\n")
    deps = [i for i, line in enumerate(lines) if '= { path = "../functions/' in line]
    if not deps:
        raise ScaffoldError('tests/Cargo.toml has no `= { path = "../functions/...` dependency to put the new one beside')
    lines.insert(deps[-1] + 1, f'{name} = {{ path = "../functions/{name}" }}')
    return "\n".join(lines)


def edit_least_privilege(text, name, p):
    start = text.find("fn declared()")
    end = text.find("\n    ]\n", start)
    if start < 0 or end < 0:
        raise ScaffoldError("tests/integration/least_privilege.rs has no `fn declared()` list")
    entry = f'("{p}Function", {name.replace("-", "_")}::wiring::AWS_PERMISSIONS)'
    # rustfmt puts a tuple wider than 60 columns on separate lines.
    if len(entry) > 60:
        inner = entry[1:-1].split(", ")
        line = "        (\n" + "".join(f"            {part},\n" for part in inner) + "        ),"
    else:
        line = f"        {entry},"
    return text[:end] + "\n" + line + text[end:]


def crate_files(name, trigger):
    lib = name.replace("-", "_")
    p = pascal(name)
    manifest = (
        f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition.workspace = true\n'
        "rust-version.workspace = true\nlicense.workspace = true\npublish.workspace = true\n\n"
        f'[lib]\ndoctest = false\n\n[[bin]]\nname = "{name}"\npath = "src/main.rs"\ntest = false\n\n'
        "[dependencies]\n"
    )
    if trigger == "sqs":
        manifest += (
            "aws-config.workspace = true\naws-sdk-sqs.workspace = true\naws_lambda_events.workspace = true\n"
            "lambda_runtime.workspace = true\naws-adapters.workspace = true\ndomain.workspace = true\ntokio.workspace = true\ntracing.workspace = true\n"
        )
        return {
            "Cargo.toml": manifest,
            "src/lib.rs": SQS_LIB.format(name=name, p=p, event_type=SQS_EVENT_TYPE),
            "src/main.rs": SQS_MAIN.format(name=name, lib=lib),
            "src/wiring.rs": SQS_WIRING.format(p=p),
        }
    manifest += (
        "aws-config.workspace = true\nlambda_http.workspace = true\nserde_json.workspace = true\n"
        "aws-adapters.workspace = true\ndomain.workspace = true\ntokio.workspace = true\ntracing.workspace = true\n"
    )
    return {
        "Cargo.toml": manifest,
        "src/lib.rs": HTTP_LIB.format(name=name, p=p),
        "src/main.rs": HTTP_MAIN.format(name=name, lib=lib),
        "src/wiring.rs": HTTP_WIRING.format(p=p),
    }


SQS_LIB = '''//! {name}: reacts to order events from the order-events topic.
//!
//! Scaffolded by `make new-function`: it logs each event that the filter policy of its
//! subscription lets through. Put what the function is for in `App`'s `on_event`; the
//! batch rules (partial batch responses, poison messages to the DLQ at once) come from
//! [`aws_adapters::consumer`], like every consumer. Its resources in template.yaml are the
//! ones whose names start with `{p}`.

pub mod wiring;

use aws_adapters::consumer::Consumer;
use domain::events::{{Envelope, EventType}};
use domain::failure::Failure;
use domain::ports::DeadLetterSink;

/// The event types this function handles. SNS filters on them, so the function never
/// pays for events it would refuse, and anything else that arrives is poison. Keep it
/// equal to the `FilterPolicy` of `{p}Subscription` in template.yaml.
pub const HANDLED: &[EventType] = &[EventType::{event_type}];

/// The function's dependencies, built once per cold start in `main`.
pub struct App<D> {{
    dead_letters: D,
}}

impl<D: DeadLetterSink> App<D> {{
    /// Wires the function to where its poison messages go.
    pub fn new(dead_letters: D) -> Self {{
        Self {{ dead_letters }}
    }}
}}

impl<D: DeadLetterSink> Consumer for App<D> {{
    type DeadLetters = D;

    fn dead_letters(&self) -> &D {{
        &self.dead_letters
    }}

    /// One event. Every message can arrive twice: before adding an effect outside
    /// DynamoDB, wrap it in `aws_adapters::consumer::once_per_event` as notification does (see
    /// "Exactly-once effects" in docs/architecture.md). The record's span already carries
    /// the event, order and correlation ids, so every log line here names its order.
    async fn on_event(&self, envelope: Envelope, _deadline: Option<i64>) -> Result<(), Failure> {{
        if !HANDLED.contains(&envelope.event_type()) {{
            return Err(Failure::Permanent(format!(
                "{name} does not handle {{}} events",
                envelope.event_type()
            )));
        }}
        tracing::info!("event handled");
        Ok(())
    }}
}}

#[cfg(test)]
mod tests {{
    use aws_adapters::runtime::EventFunction;
    use aws_lambda_events::event::sqs::{{SqsEvent, SqsMessage}};
    use domain::ports::InMemoryDeadLetters;
    use lambda_runtime::LambdaEvent;

    use super::*;

    fn message(id: &str, body: &str) -> SqsMessage {{
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(body.to_owned());
        message
    }}

    #[tokio::test]
    async fn handles_its_events_and_dead_letters_poison_without_failing_the_batch() {{
        let placed = r#"{{"id": "0b6f3c2e-1a4d-4f5e-8c7b-9d0e1f2a3b4c", "type": "OrderPlaced", "version": 1, "occurred_at": "2026-11-24T12:00:00Z", "correlation_id": "test-1", "order_id": "3f0c9a52-8a4e-4d61-b0a3-5b8f7e2d1c90", "payload": {{"customer_id": "cust-4711", "items": [{{"sku": "SKU-MUG", "quantity": 1, "unit_price": {{"amount_minor": 1250, "currency": "EUR"}}}}], "total": {{"amount_minor": 1250, "currency": "EUR"}}, "payment_token": "tok_visa"}}}}"#;
        let mut batch = SqsEvent::default();
        batch.records = vec![message("good", placed), message("poison", "not an event")];
        let app = App::new(InMemoryDeadLetters::default());

        let response = app
            .handle(LambdaEvent::new(batch, lambda_runtime::Context::default()))
            .await;

        assert!(response.batch_item_failures.is_empty(), "nothing is retried");
        let forwarded = app.dead_letters.letters();
        assert_eq!(forwarded.len(), 1, "{{forwarded:?}}");
        assert_eq!(forwarded[0].original_id.as_deref(), Some("poison"));
    }}
}}
'''

SQS_MAIN = '''//! Lambda entry point of {name}: the one call that runs it. Init happens once per cold
//! start (`wiring::from_env`), then every invocation reuses what it built: see
//! `aws_adapters::runtime`.

#[tokio::main]
async fn main() -> Result<(), aws_adapters::runtime::Error> {{
    aws_adapters::runtime::run({lib}::wiring::from_env).await
}}
'''

SQS_WIRING = '''//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_config::SdkConfig;
use aws_adapters::SqsDeadLetters;
use aws_adapters::config::{{Lookup, MissingSetting, required}};

use crate::App;

/// The function's settings (see `{p}Function` in template.yaml).
#[derive(Debug, Clone)]
pub struct Config {{
    /// Where poison messages go.
    pub dead_letter_queue_url: String,
}}

impl Config {{
    /// Reads the settings; fails the cold start if one is missing.
    pub fn load(lookup: Lookup) -> Result<Self, MissingSetting> {{
        Ok(Self {{
            dead_letter_queue_url: required(lookup, "DEAD_LETTER_QUEUE_URL")?,
        }})
    }}
}}

/// The function wired to AWS.
pub type LiveApp = App<SqsDeadLetters>;

/// Builds the live function.
pub fn live(sdk: &SdkConfig, config: &Config) -> LiveApp {{
    App::new(SqsDeadLetters::new(
        aws_sdk_sqs::Client::new(sdk),
        &config.dead_letter_queue_url,
    ))
}}

/// What `main` runs once per cold start: the settings from the process environment,
/// then the function.
pub async fn from_env(sdk: SdkConfig) -> Result<LiveApp, aws_adapters::runtime::Error> {{
    Ok(live(&sdk, &Config::load(&aws_adapters::config::process_env)?))
}}

/// Every AWS call this function's code makes, as (IAM action, template resource). The
/// function's role in template.yaml must grant exactly these (plus what Lambda itself
/// needs for logs, traces and the event source); `tests/integration/least_privilege.rs`
/// fails when the two disagree, so a new SDK call means updating both together.
pub const AWS_PERMISSIONS: &[(&str, &str)] = &[
    // forwarding poison messages
    ("sqs:SendMessage", "{p}DeadLetterQueue"),
];
'''

HTTP_LIB = '''//! `GET /{name}`: scaffolded by `make new-function`.
//!
//! It answers with its name and the request's correlation id. Put what the route is for
//! in `App`'s `handle`; the route itself is in docs/openapi.yaml (the API contract, which
//! API Gateway is built from) and in the `Api` event of its function in template.yaml,
//! `{p}Function`.

pub mod wiring;

use lambda_http::{{Body, Request, RequestExt, Response}};
use aws_adapters::http_api;
use aws_adapters::runtime::HttpFunction;

/// The function's dependencies, built once per cold start in `main`: none yet. Add the
/// ports it needs (e.g. `domain::ports::OrderStore`) as fields, built in `wiring::live`.
#[derive(Debug, Default)]
pub struct App {{}}

impl HttpFunction for App {{
    /// Handles one request. Never fails: an error would become a problem+json response
    /// (`domain::problem`), as in get-order.
    async fn handle(&self, request: Request) -> Response<Body> {{
        let request_id = request.lambda_context_ref().map(|c| c.request_id.clone());
        let correlation_id = http_api::correlation_id(request.headers(), request_id.as_deref());
        tracing::info!(correlation_id = %correlation_id, "request handled");
        let body = serde_json::json!({{
            "function": "{name}",
            "correlation_id": correlation_id.as_str(),
        }});
        http_api::with_correlation_id(http_api::json(200, body.to_string()), &correlation_id)
            .map(Body::from)
    }}
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[tokio::test]
    async fn answers_with_the_callers_correlation_id() {{
        let request = lambda_http::http::Request::builder()
            .uri("/{name}")
            .header("x-correlation-id", "test-1")
            .body(Body::Empty)
            .expect("a valid request");

        let response = App::default().handle(request).await;

        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-correlation-id"], "test-1");
        let Body::Text(body) = response.body() else {{
            panic!("a JSON text body, got {{:?}}", response.body());
        }};
        assert!(body.contains(r#""correlation_id":"test-1""#), "{{body}}");
    }}
}}
'''

HTTP_MAIN = '''//! Lambda entry point for `GET /{name}`: the one call that runs it. Init happens once
//! per cold start (`wiring::from_env`), then every request reuses what it built: see
//! `aws_adapters::runtime`.

#[tokio::main]
async fn main() -> Result<(), aws_adapters::runtime::Error> {{
    aws_adapters::runtime::run_http({lib}::wiring::from_env).await
}}
'''

HTTP_WIRING = '''//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_config::SdkConfig;
use aws_adapters::config::{{Lookup, MissingSetting}};

use crate::App;

/// The function's settings: none yet. Read each one in `load` with
/// `aws_adapters::config::required`, so a missing one fails the cold start (see the
/// `Environment` of `{p}Function` in template.yaml).
#[derive(Debug, Clone, Default)]
pub struct Config {{}}

impl Config {{
    /// Reads the settings; fails the cold start if one is missing.
    pub fn load(_lookup: Lookup) -> Result<Self, MissingSetting> {{
        Ok(Self {{}})
    }}
}}

/// The function wired to AWS.
pub type LiveApp = App;

/// Builds the live function (an SDK client per AWS service it calls, from `sdk`).
pub fn live(_sdk: &SdkConfig, _config: &Config) -> LiveApp {{
    App::default()
}}

/// What `main` runs once per cold start: the settings from the process environment,
/// then the function.
pub async fn from_env(sdk: SdkConfig) -> Result<LiveApp, aws_adapters::runtime::Error> {{
    Ok(live(&sdk, &Config::load(&aws_adapters::config::process_env)?))
}}

/// Every AWS call this function's code makes, as (IAM action, template resource). The
/// function's role in template.yaml must grant exactly these (plus what Lambda itself
/// needs for logs, traces and the event source); `tests/integration/least_privilege.rs`
/// fails when the two disagree, so a new SDK call means updating both together.
pub const AWS_PERMISSIONS: &[(&str, &str)] = &[];
'''


def sample_event(name, trigger):
    p = pascal(name)
    if trigger == "sqs":
        body = json.dumps({
            "id": "0b6f3c2e-1a4d-4f5e-8c7b-9d0e1f2a3b4c", "type": "OrderPlaced", "version": 1,
            "occurred_at": "2026-11-24T12:00:00Z", "correlation_id": "sample-checkout-1",
            "order_id": "3f0c9a52-8a4e-4d61-b0a3-5b8f7e2d1c90",
            "payload": {
                "customer_id": "cust-4711",
                "items": [{"sku": "SKU-MUG", "quantity": 2, "unit_price": {"amount_minor": 1250, "currency": "EUR"}}],
                "total": {"amount_minor": 2500, "currency": "EUR"}, "payment_token": "tok_visa",
            },
        })
        attribute = lambda value: {  # noqa: E731 (one line reads better here)
            "stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String",
        }
        event = {"Records": [{
            "messageId": "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1", "SentTimestamp": "1798000000000",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1798000000001",
            },
            "messageAttributes": {"type": attribute("OrderPlaced"), "correlation_id": attribute("sample-checkout-1")},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{p}Queue",
            "awsRegion": "us-east-1",
        }]}
    else:
        event = {
            "resource": f"/{name}", "path": f"/{name}", "httpMethod": "GET",
            "headers": {"Accept": "application/json", "X-Correlation-Id": "sample-checkout-1"},
            "multiValueHeaders": {"Accept": ["application/json"], "X-Correlation-Id": ["sample-checkout-1"]},
            "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": None, "stageVariables": None,
            "requestContext": {
                "accountId": "123456789012", "resourceId": "abc123", "stage": "Prod",
                "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "requestTimeEpoch": 1798000000000,
                "identity": {"sourceIp": "127.0.0.1", "userAgent": "curl/8.5.0"},
                "resourcePath": f"/{name}", "httpMethod": "GET", "apiId": "1234567890",
                "path": f"/Prod/{name}", "protocol": "HTTP/1.1",
            },
            "body": None, "isBase64Encoded": False,
        }
    return json.dumps(event, indent=2) + "\n"


# ---------------------------------------------------------------- main


def scaffold(name, trigger):
    """Checks everything first, then writes: a refusal leaves the repository untouched."""
    template_path = ROOT / "template.yaml"
    openapi_path = ROOT / "docs/openapi.yaml"
    manifest_path = ROOT / "tests/Cargo.toml"
    least_privilege_path = ROOT / "tests/integration/least_privilege.rs"
    sample_path = ROOT / "events" / f"{name}.json"
    template = template_path.read_text()
    check_name(name, template)
    if sample_path.exists():
        raise ScaffoldError(f"{sample_path.relative_to(ROOT)} already exists")
    p = pascal(name)
    edits = {
        template_path: edit_template(template, name, trigger),
        manifest_path: edit_tests_manifest(manifest_path.read_text(), name),
        least_privilege_path: edit_least_privilege(least_privilege_path.read_text(), name, p),
        sample_path: sample_event(name, trigger),
    }
    if trigger == "http":
        edits[openapi_path] = edit_openapi(openapi_path.read_text(), name, p)
    crate = ROOT / "functions" / name
    for relative, text in crate_files(name, trigger).items():
        edits[crate / relative] = text
    for path, text in edits.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    refresh_best_practices.main()
    format_rust([crate / "src/lib.rs", crate / "src/main.rs", least_privilege_path])
    return sorted(str(path.relative_to(ROOT)) for path in edits)


def format_rust(files):
    """rustfmt the generated Rust, so `cargo fmt --check` in `make test` agrees with it."""
    rustfmt = shutil.which("rustfmt")
    if rustfmt is None:
        print("new-function: rustfmt not found; run `make fmt` before `make test`", file=sys.stderr)
        return
    subprocess.run([rustfmt, "--edition", "2024", *map(str, files)], check=True)


def main():
    parser = argparse.ArgumentParser(description="Scaffold a new function: crate, template resources, sample event, checks.")
    parser.add_argument("name", help="kebab-case name, e.g. loyalty-points")
    parser.add_argument("trigger", choices=["sqs", "http"], help="sqs: consumes order events; http: a route on OrdersApi")
    args = parser.parse_args()
    try:
        written = scaffold(args.name, args.trigger)
    except ScaffoldError as error:
        print(f"new-function: {error}", file=sys.stderr)
        return 2
    p = pascal(args.name)
    print(f"Scaffolded {args.name} ({args.trigger}). Written or edited:")
    for path in written:
        print(f"  {path}")
    print("Next:")
    print(f"  1. Put its logic in functions/{args.name}/src/lib.rs (the unit test shows the shape).")
    if args.trigger == "sqs":
        print(f"  2. Choose its events: HANDLED in lib.rs and {p}Subscription's FilterPolicy in template.yaml, together.")
    else:
        print(f"  2. Shape the route: /{args.name} in docs/openapi.yaml and {p}Function's Api event, together.")
    print(f"  3. Each new AWS call: AWS_PERMISSIONS in functions/{args.name}/src/wiring.rs and {p}Role, together.")
    print(f"  4. Each new setting: Config in wiring.rs and {p}Function's Environment.")
    print(f"  5. Describe it: {p}Function's Description, docs/architecture.md. Then `make test`; `make demo` runs it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
