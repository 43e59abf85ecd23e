//! Least privilege, checked offline: each function's role in template.yaml grants exactly
//! the actions its code declares (`AWS_PERMISSIONS` in its `wiring.rs`) on exactly the
//! declared resources, plus what Lambda itself needs (logs to its own log group, X-Ray,
//! reading its event source), and nothing with a `*` action or resource beyond the
//! two places AWS requires it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use emulator::template::{FUNCTION, Template};
use serde_json::Value;

type Grants = BTreeSet<(String, String)>;

/// The resource a policy statement names, as a logical id (`Table`, `Table/stream`) or `*`.
fn resource_name(value: &Value) -> String {
    if let Some(text) = value.as_str() {
        return text.to_owned();
    }
    if let Some(name) = value.get("Ref").and_then(Value::as_str) {
        return name.to_owned();
    }
    if let Some([id, attribute]) = value
        .get("Fn::GetAtt")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        let id = id.as_str().unwrap_or_default();
        return match attribute.as_str() {
            Some("StreamArn") => format!("{id}/stream"),
            _ => id.to_owned(),
        };
    }
    value.to_string()
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// What a function's role grants, as (action, resource) pairs.
fn granted(template: &Template, function: &str) -> Grants {
    let role = template.resources[function].properties["Role"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{function} uses an explicit role"))
        .to_owned();
    let mut grants = Grants::new();
    for policy in template.resources[&role].properties["Policies"]
        .as_array()
        .unwrap()
    {
        for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow");
            for action in as_list(&statement["Action"]) {
                for resource in as_list(&statement["Resource"]) {
                    grants.insert((
                        action.as_str().unwrap().to_owned(),
                        resource_name(&resource),
                    ));
                }
            }
        }
    }
    grants
}

/// What a function needs: its code's calls plus what Lambda does on its behalf.
fn needed(template: &Template, function: &str, code: &[(String, String)]) -> Grants {
    let mut needs: Grants = code.iter().cloned().collect();
    let properties = &template.resources[function].properties;
    let log_group = resource_name(&properties["LoggingConfig"]["LogGroup"]);
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        needs.insert((action.into(), log_group.clone()));
    }
    for action in ["xray:PutTelemetryRecords", "xray:PutTraceSegments"] {
        needs.insert((action.into(), "*".into()));
    }
    for event in properties["Events"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, e)| e)
    {
        let p = &event["Properties"];
        match event["Type"].as_str() {
            Some("SQS") => {
                let queue = resource_name(&p["Queue"]);
                for action in [
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                ] {
                    needs.insert((action.into(), queue.clone()));
                }
            }
            Some("DynamoDB") => {
                let stream = resource_name(&p["Stream"]);
                for action in [
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                ] {
                    needs.insert((action.into(), stream.clone()));
                }
                // AWS requires "*" for ListStreams.
                needs.insert(("dynamodb:ListStreams".into(), "*".into()));
                if let Some(destination) = p["DestinationConfig"]["OnFailure"].get("Destination") {
                    needs.insert(("sqs:SendMessage".into(), resource_name(destination)));
                }
            }
            _ => {}
        }
    }
    needs
}

/// Every way `template` departs from least privilege for the given functions.
fn violations(template: &Template, declared: &[Declared]) -> Vec<String> {
    let mut problems = Vec::new();
    for (function, code) in declared {
        let granted = granted(template, function);
        let needed = needed(template, function, code);
        for extra in granted.difference(&needed) {
            problems.push(format!(
                "{function} is granted {extra:?}, which nothing needs"
            ));
        }
        for missing in needed.difference(&granted) {
            problems.push(format!(
                "{function} needs {missing:?}, which its role does not grant"
            ));
        }
        for (action, _) in &granted {
            if action.contains('*') {
                problems.push(format!("{function} has the wildcard action {action}"));
            }
        }
    }
    problems
}

/// One function's declared calls: (its logical id, its `AWS_PERMISSIONS`).
type Declared = (String, Vec<(String, String)>);

/// Every function in the template with the calls its code declares: see
/// [`function_crates`].
fn declared(template: &Template) -> Vec<Declared> {
    function_crates(template)
        .into_iter()
        .map(|(id, src)| {
            let wiring = src.join("wiring.rs");
            let code = std::fs::read_to_string(&wiring)
                .unwrap_or_else(|e| panic!("{}: {e}", wiring.display()));
            (id, aws_permissions(&code, &wiring))
        })
        .collect()
}

/// Every function in the template with its crate's `src/`, found without a hand-kept
/// list: the template names each function's binary (`Metadata.BuildProperties.Binary`),
/// and `cargo metadata` says which crate builds it. That crate's `wiring.rs` holds
/// `AWS_PERMISSIONS`, so a new function is checked the moment it is in the template.
fn function_crates(template: &Template) -> Vec<(String, PathBuf)> {
    let metadata = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(emulator::workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(metadata.status.success(), "cargo metadata: {metadata:?}");
    let metadata: Value = serde_json::from_slice(&metadata.stdout).expect("cargo metadata JSON");
    template
        .of_kind(FUNCTION)
        .map(|(id, resource)| {
            let binary = resource.metadata["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} names its binary in Metadata.BuildProperties"));
            let package = metadata["packages"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|package| {
                    package["targets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|target| target["name"] == binary && target["kind"][0] == "bin")
                })
                .unwrap_or_else(|| panic!("a workspace crate builds {id}'s binary {binary}"));
            let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
            (id.to_owned(), manifest.with_file_name("src"))
        })
        .collect()
}

/// The `(action, resource)` pairs of the `AWS_PERMISSIONS` constant in a `wiring.rs`.
fn aws_permissions(code: &str, path: &Path) -> Vec<(String, String)> {
    let start = code
        .find("pub const AWS_PERMISSIONS: Permissions = &[")
        .unwrap_or_else(|| panic!("{} declares `pub const AWS_PERMISSIONS`", path.display()));
    let end = start + code[start..].find("];").expect("the constant ends");
    code[start..end]
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .flat_map(|line| line.split('(').skip(1))
        .filter_map(|pair| {
            let mut quoted = pair.split('"').skip(1).step_by(2);
            Some((quoted.next()?.to_owned(), quoted.next()?.to_owned()))
        })
        .collect()
}

fn repository_template() -> (Template, String) {
    let path = Template::workspace_template();
    let text = std::fs::read_to_string(&path).unwrap();
    (Template::parse(&text).unwrap(), text)
}

#[test]
fn every_function_is_granted_exactly_what_its_code_uses() {
    let (template, _) = repository_template();
    let declared = declared(&template);
    assert!(
        declared.iter().any(|(id, calls)| id == "PaymentFunction"
            && calls.contains(&("dynamodb:PutItem".into(), "PaymentsTable".into()))),
        "the permissions are read from the code: {declared:?}"
    );
    assert_eq!(violations(&template, &declared), Vec::<String>::new());
}

#[test]
fn a_widened_policy_fails_the_check() {
    let (template, text) = repository_template();
    let declared = declared(&template);
    // Someone grants the relay Scan on the orders table "while debugging".
    let widened = text.replacen(
        "                  - sns:Publish\n",
        "                  - sns:Publish\n                  - dynamodb:Scan\n",
        1,
    );
    assert_ne!(widened, text);
    let problems = violations(&Template::parse(&widened).unwrap(), &declared);
    assert!(
        problems.iter().any(|p| p.contains("dynamodb:Scan")),
        "{problems:?}"
    );
    // Or a wildcard resource.
    let wildcard = text.replacen(
        "                  - !GetAtt OrdersTable.Arn\n",
        "                  - \"*\"\n",
        1,
    );
    let problems = violations(&Template::parse(&wildcard).unwrap(), &declared);
    assert!(problems.iter().any(|p| p.contains("\"*\"")), "{problems:?}");
}

#[test]
fn a_dropped_action_fails_the_check() {
    let (template, _) = repository_template();
    // The code starts calling something the role does not grant.
    let mut declared = declared(&template);
    let relay = declared
        .iter_mut()
        .find(|(id, _)| id == "EventRelayFunction")
        .expect("the relay is in the template");
    relay
        .1
        .push(("dynamodb:Query".into(), "OrdersTable".into()));
    let problems = violations(&template, &declared);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("dynamodb:Query") && p.contains("does not grant")),
        "{problems:?}"
    );
}

/// Consumers act on what the order-events topic says (payment charges on `OrderPlaced`),
/// so the topic's policy denies `sns:Publish` to every principal but the relay's role:
/// an IAM grant elsewhere in the account cannot inject events.
#[test]
fn only_the_relay_may_publish_order_events() {
    let template = Template::load(&Template::workspace_template()).unwrap();
    let policies: Vec<&emulator::template::Resource> = template
        .resources
        .values()
        .filter(|r| {
            r.kind == "AWS::SNS::TopicPolicy"
                && as_list(&r.properties["Topics"])
                    .iter()
                    .any(|t| resource_name(t) == "OrderEventsTopic")
        })
        .collect();
    assert_eq!(policies.len(), 1, "one policy on OrderEventsTopic");
    let statements = policies[0].properties["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let guard = statements
        .iter()
        .find(|s| {
            s["Effect"] == "Deny"
                && s["Principal"] == "*"
                && as_list(&s["Action"]).contains(&Value::from("sns:Publish"))
                && s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].is_object()
        })
        .expect("a Deny of sns:Publish for every principal but one");
    assert_eq!(
        resource_name(&guard["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]),
        "EventRelayRole",
        "the one principal is the relay's role"
    );
}

// ---------------------------------------------------------------- keys and transport

/// The table every function keeps its idempotency records in, each under its own prefix.
const SHARED_TABLE: &str = "IdempotencyTable";

/// The prefix a function's code writes its idempotency keys under: the `KEY_SCOPE`
/// constant of its crate's `lib.rs`, if it has one.
fn key_scope(src: &Path) -> Option<String> {
    let code = std::fs::read_to_string(src.join("lib.rs")).ok()?;
    let at = code.find("const KEY_SCOPE: &str = \"")? + "const KEY_SCOPE: &str = \"".len();
    Some(code[at..].split('"').next()?.to_owned())
}

/// Every way a role reaches beyond its function's own keys in the shared table: each
/// statement naming the table must name nothing else and carry
/// `ForAllValues:StringLike` `dynamodb:LeadingKeys` of exactly `<KEY_SCOPE>#*`.
///
/// `ForAllValues` passes a request that names no key at all (a `Scan`), which is why
/// the grants themselves stay exact (`every_function_is_granted_exactly_what_its_code_uses`):
/// every action granted here names its key.
fn key_violations(template: &Template, crates: &[(String, PathBuf)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (function, src) in crates {
        let role = template.resources[function].properties["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_default();
        let statements: Vec<&Value> = template.resources[role].properties["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .filter(|s| {
                as_list(&s["Resource"])
                    .iter()
                    .any(|r| resource_name(r) == SHARED_TABLE)
            })
            .collect();
        if statements.is_empty() {
            continue;
        }
        let Some(scope) = key_scope(src) else {
            problems.push(format!(
                "{function} may use {SHARED_TABLE} but {} declares no `const KEY_SCOPE: &str`",
                src.join("lib.rs").display()
            ));
            continue;
        };
        let expected = serde_json::json!({
            "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [format!("{scope}#*")] }
        });
        for statement in statements {
            if as_list(&statement["Resource"])
                .iter()
                .any(|r| resource_name(r) != SHARED_TABLE)
            {
                problems.push(format!(
                    "{function}: a statement on {SHARED_TABLE} names other resources too; \
                     give the table a statement of its own"
                ));
            }
            if statement["Condition"] != expected {
                problems.push(format!(
                    "{function} may reach keys of {SHARED_TABLE} other than its own: its \
                     statement's Condition is {}, not {expected} (KEY_SCOPE in its lib.rs)",
                    statement["Condition"]
                ));
            }
        }
    }
    problems
}

/// Payment, notification, inventory and create-order share one idempotency table. A
/// function able to delete another's records could undo its exactly-once guarantee (a
/// deleted `create-order#<key>` lets a retried POST place a second order), so each role
/// reaches only the keys its own code writes.
#[test]
fn every_function_touches_only_its_own_idempotency_keys() {
    let (template, _) = repository_template();
    let crates = function_crates(&template);
    let scoped = crates
        .iter()
        .filter(|(_, src)| key_scope(src).is_some())
        .count();
    assert!(scoped >= 2, "{scoped} functions declare a KEY_SCOPE");
    assert_eq!(key_violations(&template, &crates), Vec::<String>::new());

    // Someone widens create-order's keys to the whole table...
    let (_, text) = repository_template();
    let widened = text.replacen("- \"create-order#*\"", "- \"*\"", 1);
    assert_ne!(widened, text);
    let problems = key_violations(&Template::parse(&widened).unwrap(), &crates);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("CreateOrderFunction may reach")),
        "{problems:?}"
    );
    // ...or renames the scope in the code and not in the template.
    let renamed = text.replacen("- \"notification#*\"", "- \"notify#*\"", 1);
    let problems = key_violations(&Template::parse(&renamed).unwrap(), &crates);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("NotificationFunction may reach")),
        "{problems:?}"
    );
}

/// Every queue that is not covered by exactly one queue policy refusing plain HTTP
/// (`aws:SecureTransport` false, every principal, every SQS action). One policy, because
/// a queue has one: a second `AWS::SQS::QueuePolicy` on the same queue replaces the first.
fn plain_http_violations(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for (queue, _) in template.of_kind("AWS::SQS::Queue") {
        let policies: Vec<(&str, &emulator::template::Resource)> = template
            .of_kind("AWS::SQS::QueuePolicy")
            .filter(|(_, p)| {
                as_list(&p.properties["Queues"])
                    .iter()
                    .any(|q| resource_name(q) == queue)
            })
            .collect();
        let [(_, policy)] = policies.as_slice() else {
            problems.push(format!(
                "{queue} is in {} queue policies, not one",
                policies.len()
            ));
            continue;
        };
        let refuses = policy.properties["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["Effect"] == "Deny"
                    && s["Principal"] == "*"
                    && as_list(&s["Action"]).contains(&Value::from("sqs:*"))
                    && as_list(&s["Resource"])
                        .iter()
                        .any(|r| resource_name(r) == queue)
                    && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
            });
        if !refuses {
            problems.push(format!(
                "{queue}'s policy does not deny sqs:* over plain HTTP (aws:SecureTransport false)"
            ));
        }
    }
    problems
}

/// Messages hold orders; a dead-letter queue holds them for 14 days. None may be read or
/// written over plain HTTP, by any principal.
#[test]
fn every_queue_and_dead_letter_queue_refuses_plain_http() {
    let (template, text) = repository_template();
    let queues = template.of_kind("AWS::SQS::Queue").count();
    assert!(queues >= 10, "{queues} queues");
    assert_eq!(plain_http_violations(&template), Vec::<String>::new());

    let dropped = text.replacen("        - !Ref PaymentDeadLetterQueue\n", "", 1);
    assert_ne!(dropped, text);
    let problems = plain_http_violations(&Template::parse(&dropped).unwrap());
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("PaymentDeadLetterQueue is in 0")),
        "{problems:?}"
    );
}

// ---------------------------------------------------------------- who can do what

/// A policy condition as a reader says it: `aws:SecureTransport is false`, intrinsics
/// named by their logical id.
fn condition_text(condition: &Value) -> String {
    let Some(operators) = condition.as_object() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (operator, keys) in operators {
        for (key, values) in keys.as_object().into_iter().flatten() {
            let values: Vec<String> = as_list(values)
                .iter()
                .map(|v| format!("`{}`", resource_name(v)))
                .collect();
            parts.push(format!("{key} {operator} {}", values.join(", ")));
        }
    }
    parts.join("; ")
}

/// The statements of a policy document, whatever form its `Statement` takes.
fn statements(document: &Value) -> Vec<Value> {
    as_list(&document["Statement"])
}

/// docs/access.md's table: every role with what it may do on what, then every resource
/// policy, all read from `template`.
fn access_table(template: &Template) -> String {
    let mut rows = vec![
        "| principal | effect | actions | on | only when |".to_owned(),
        "|-----------|--------|---------|----|-----------|".to_owned(),
    ];
    let row = |principal: &str, statement: &Value| {
        let mut actions: Vec<String> = as_list(&statement["Action"])
            .iter()
            .map(|a| format!("`{}`", a.as_str().unwrap_or_default()))
            .collect();
        actions.sort();
        let resources: Vec<String> = as_list(&statement["Resource"])
            .iter()
            .map(|r| format!("`{}`", resource_name(r)))
            .collect();
        format!(
            "| {principal} | {} | {} | {} | {} |",
            statement["Effect"].as_str().unwrap_or_default(),
            actions.join(" "),
            resources.join(" "),
            condition_text(&statement["Condition"])
        )
    };
    let users: BTreeSet<(String, String)> = template
        .resources
        .iter()
        .filter_map(|(id, r)| {
            let role = r.properties.get("Role")?["Fn::GetAtt"][0].as_str()?;
            Some((role.to_owned(), id.clone()))
        })
        .collect();
    for (role, resource) in template.of_kind("AWS::IAM::Role") {
        let used_by: Vec<&str> = users
            .iter()
            .filter(|(r, _)| r == role)
            .map(|(_, user)| user.as_str())
            .collect();
        let principal = if used_by.is_empty() {
            let services: Vec<String> = statements(
                resource
                    .properties
                    .get("AssumeRolePolicyDocument")
                    .unwrap_or(&Value::Null),
            )
            .iter()
            .flat_map(|s| as_list(&s["Principal"]["Service"]))
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
            format!("`{role}` (assumed by {})", services.join(", "))
        } else {
            format!("`{role}` ({})", used_by.join(", "))
        };
        for policy in resource
            .properties
            .get("Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for statement in statements(&policy["PolicyDocument"]) {
                rows.push(row(&principal, &statement));
            }
        }
        for arn in resource
            .properties
            .get("ManagedPolicyArns")
            .map(as_list)
            .unwrap_or_default()
        {
            let name = arn
                .get("Fn::Sub")
                .and_then(Value::as_str)
                .and_then(|sub| sub.rsplit('/').next())
                .map_or_else(|| resource_name(&arn), str::to_owned);
            rows.push(format!(
                "| {principal} | Allow | AWS managed policy `{name}` | | |"
            ));
        }
    }
    rows.push(String::new());
    rows.push("| resource policy | effect | principal | actions | on | only when |".to_owned());
    rows.push("|-----------------|--------|-----------|---------|----|-----------|".to_owned());
    for kind in ["AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"] {
        for (id, policy) in template.of_kind(kind) {
            for statement in statements(&policy.properties["PolicyDocument"]) {
                let principal = match &statement["Principal"] {
                    Value::String(any) => format!("`{any}`"),
                    other => other
                        .as_object()
                        .into_iter()
                        .flatten()
                        .flat_map(|(_, v)| as_list(v))
                        .map(|p| format!("`{}`", resource_name(&p)))
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                let line = row("", &statement);
                // `| | effect | actions | on | when |` with the principal after the effect.
                let cells: Vec<&str> = line.split(" | ").collect();
                rows.push(format!(
                    "| `{id}` | {} | {principal} | {} | {} | {}",
                    cells[1], cells[2], cells[3], cells[4]
                ));
            }
        }
    }
    rows.join("\n") + "\n"
}

/// The access model on one page: docs/access.md holds the table `access_table` makes from
/// template.yaml, between its markers, so a change to any role or resource policy shows
/// in the doc's diff. `UPDATE_DOCS=1` rewrites it.
#[test]
fn the_access_table_in_the_docs_is_the_templates() {
    const BEGIN: &str = "<!-- generated from template.yaml: begin -->\n";
    const END: &str = "<!-- generated from template.yaml: end -->\n";
    let (template, _) = repository_template();
    let table = access_table(&template);
    assert!(
        table.contains("dynamodb:LeadingKeys ForAllValues:StringLike `notification#*`"),
        "{table}"
    );
    let path = emulator::workspace_root().join("docs/access.md");
    let doc = std::fs::read_to_string(&path).expect("docs/access.md exists");
    let (before, rest) = doc
        .split_once(BEGIN)
        .expect("docs/access.md has the begin marker");
    let (current, after) = rest
        .split_once(END)
        .expect("docs/access.md has the end marker");
    if current == table {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{before}{BEGIN}{table}{END}{after}")).expect("write");
        return;
    }
    panic!(
        "docs/access.md's table is not template.yaml's: run `make access` and review the \
         diff. The table now:\n{table}"
    );
}
