//! Least privilege, checked offline: each function's role in template.yaml grants exactly
//! the actions its code declares (`AWS_PERMISSIONS` in its `wiring.rs`) on exactly the
//! declared resources, plus what Lambda itself needs (logs to its own log group, X-Ray,
//! reading its event source), and nothing with a `*` action or resource beyond the
//! two places AWS requires it.

use std::collections::BTreeSet;

use local::template::{FUNCTION, Template};
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

/// Every function in the template with the calls its code declares, found without a
/// hand-kept list: the template names each function's binary
/// (`Metadata.BuildProperties.Binary`), `cargo metadata` says which crate builds it, and
/// that crate's `wiring.rs` holds `AWS_PERMISSIONS`. A new function is checked the moment
/// it is in the template.
fn declared(template: &Template) -> Vec<Declared> {
    let metadata = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(local::emulator::workspace_root())
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
            let manifest =
                std::path::Path::new(package["manifest_path"].as_str().unwrap_or_default());
            let wiring = manifest.with_file_name("src").join("wiring.rs");
            let code = std::fs::read_to_string(&wiring)
                .unwrap_or_else(|e| panic!("{}: {e}", wiring.display()));
            (id.to_owned(), aws_permissions(&code, &wiring))
        })
        .collect()
}

/// The `(action, resource)` pairs of the `AWS_PERMISSIONS` constant in a `wiring.rs`.
fn aws_permissions(code: &str, path: &std::path::Path) -> Vec<(String, String)> {
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
            && calls.contains(&("dynamodb:GetItem".into(), "PaymentsTable".into()))),
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
    let policies: Vec<&local::template::Resource> = template
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
