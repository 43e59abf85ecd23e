//! The local host end to end: real processes behind the Runtime API, the HTTP API on
//! loopback, and Lambda's behaviour on crashes and timeouts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use http::Method;
use local::emulator::workspace_root;
use local::host::logs::Logs;
use local::host::{Host, HostOptions};
use local::http_client;
use local::smoke::{self, Deployed};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// The repository's pipeline on a local host, its API on a free port.
async fn pipeline_host() -> Host {
    Host::start(
        HostOptions {
            api_port: 0,
            ..HostOptions::default()
        },
        Logs::default(),
    )
    .await
    .unwrap()
}

/// `POST /orders` to the host's API with an idempotency key and any extra headers.
async fn post_order(
    host: &Host,
    order: &Value,
    key: &str,
    extra: &[(&str, &str)],
) -> http_client::Response {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    headers.extend_from_slice(extra);
    http_client::send(
        Method::POST,
        &format!("{}/orders", host.api_url()),
        &headers,
        Some(order.to_string()),
    )
    .await
    .unwrap()
}

/// Puts `units` of `sku` in stock.
async fn seed_stock(host: &Host, sku: &str, units: u64) {
    aws_sdk_dynamodb::Client::new(&host.sdk)
        .put_item()
        .table_name(host.stack.table_name("InventoryTable").unwrap())
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(aws_adapters::tables::sku_pk(
                &domain::ids::Sku::parse(sku).unwrap(),
            )),
        )
        .item(
            "stock",
            aws_sdk_dynamodb::types::AttributeValue::N(units.to_string()),
        )
        .send()
        .await
        .unwrap();
}

/// `GET /orders/{id}` from the host's API, as the caller `x-local-caller` names.
async fn get_order_as(host: &Host, caller: &str, id: &str) -> http_client::Response {
    http_client::send(
        Method::GET,
        &format!("{}/orders/{id}", host.api_url()),
        &[(local::host::api::CALLER_HEADER, caller)],
        None,
    )
    .await
    .unwrap()
}

/// Orders belong to their caller, over HTTP through the real functions: the caller the
/// local API reports (the `x-local-caller` header here; on AWS, the signer) reads its
/// own orders back, another caller gets the 404 of an unknown id, and the same
/// Idempotency-Key from two callers places two orders, each replayed only to its own.
#[tokio::test]
async fn two_callers_never_see_each_others_orders_nor_share_a_key() {
    let host = pipeline_host().await;
    let order: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/demo/order.json")).unwrap(),
    )
    .unwrap();
    let key = uuid::Uuid::new_v4().to_string();
    let alice = [(local::host::api::CALLER_HEADER, "alice")];
    let bob = [(local::host::api::CALLER_HEADER, "bob")];
    let id_of = |body: &str| {
        serde_json::from_str::<Value>(body).unwrap()["order_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let placed = post_order(&host, &order, &key, &alice).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let alices = id_of(&placed.body);
    assert_eq!(get_order_as(&host, "alice", &alices).await.status, 200);
    let seen_by_bob = get_order_as(&host, "bob", &alices).await;
    assert_eq!(seen_by_bob.status, 404, "{}", seen_by_bob.body);
    let unknown = get_order_as(&host, "bob", &uuid::Uuid::new_v4().to_string()).await;
    let title = |body: &str| serde_json::from_str::<Value>(body).unwrap()["title"].clone();
    assert_eq!(title(&seen_by_bob.body), title(&unknown.body));

    let bobs_first = post_order(&host, &order, &key, &bob).await;
    assert_eq!(bobs_first.status, 201, "{}", bobs_first.body);
    assert!(!bobs_first.headers.contains_key("idempotent-replayed"));
    let bobs = id_of(&bobs_first.body);
    assert_ne!(bobs, alices, "bob's key is bob's own");
    let bobs_retry = post_order(&host, &order, &key, &bob).await;
    assert_eq!(bobs_retry.headers["idempotent-replayed"], "true");
    assert_eq!(id_of(&bobs_retry.body), bobs);
    let alices_retry = post_order(&host, &order, &key, &alice).await;
    assert_eq!(id_of(&alices_retry.body), alices);
    assert_eq!(get_order_as(&host, "alice", &bobs).await.status, 404);
}

/// The local API answers as API Gateway's edge does, before any function runs: an
/// unknown route is a REST API's 403, a missing Idempotency-Key and a body that breaks
/// the schema get the definition's problem+json gateway responses. With the edge off
/// (for tests of a function's own validation), the function answers the same body.
#[tokio::test]
async fn the_local_api_answers_as_api_gateways_edge_before_any_function_runs() {
    let host = pipeline_host().await;
    // The answer is the problem `slug` names, with its status in the body too.
    let problem = |response: &http_client::Response, status: u16, slug: &str| -> Value {
        assert_eq!(response.status, status, "{}", response.body);
        assert_eq!(
            response.headers["content-type"], "application/problem+json",
            "{}",
            response.body
        );
        let body: Value = serde_json::from_str(&response.body).expect("a problem is JSON");
        assert_eq!(body["status"], status, "{body}");
        let kind = body["type"].as_str().unwrap_or_default();
        assert!(kind.ends_with(&format!("/{slug}")), "{slug}: {body}");
        body
    };
    let url = host.api_url();
    for (method, path) in [(Method::GET, "/nothing"), (Method::DELETE, "/orders")] {
        let answer = http_client::send(method.clone(), &format!("{url}{path}"), &[], None)
            .await
            .unwrap();
        let body = problem(&answer, 403, "access-denied");
        assert_eq!(
            body["title"], "Unsigned request or unknown route",
            "{method} {path}"
        );
        assert_eq!(body["detail"], "Missing Authentication Token");
    }
    let order: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/demo/order.json")).unwrap(),
    )
    .unwrap();
    let no_key = http_client::send(
        Method::POST,
        &format!("{url}/orders"),
        &[("content-type", "application/json")],
        Some(order.to_string()),
    )
    .await
    .unwrap();
    let body = problem(&no_key, 400, "invalid-idempotency-key");
    assert!(
        body["detail"].as_str().unwrap().contains("Idempotency-Key"),
        "{body}"
    );

    let mut broken = order.clone();
    broken.as_object_mut().unwrap().remove("currency");
    let key = uuid::Uuid::new_v4().to_string();
    let refused = post_order(&host, &broken, &key, &[]).await;
    let body = problem(&refused, 400, "validation-failed");
    assert!(
        body["detail"].as_str().unwrap().contains("currency"),
        "{body}"
    );
    // A function stamps its correlation id on every answer; the edge does not.
    for answer in [&no_key, &refused] {
        assert!(
            !answer.headers.contains_key("x-correlation-id"),
            "no function ran"
        );
    }
    drop(host);

    let host = Host::start(
        HostOptions {
            api_port: 0,
            edge: false,
            ..HostOptions::default()
        },
        Logs::default(),
    )
    .await
    .unwrap();
    let answered = post_order(&host, &broken, &key, &[]).await;
    // The function's own problem: the edge would have said validation-failed.
    problem(&answered, 400, "malformed-request");
    assert!(
        answered.headers.contains_key("x-correlation-id"),
        "the function answered"
    );
}

/// A long run reports where it stands while it runs: orders final, messages queued,
/// dead letters (`make reliability` and `make bench` print it every 10 s).
#[tokio::test]
async fn a_heartbeat_reports_orders_final_messages_queued_and_dead_letters() {
    let host = pipeline_host().await;
    let stores = std::sync::Arc::new(
        local::audit::Stores::watch(&host.sdk, &host.stack)
            .await
            .unwrap(),
    );
    let (lines, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let _heartbeat = local::heartbeat::Heartbeat::every(
        Duration::from_millis(200),
        "test",
        stores,
        1,
        move |line| {
            let _ = lines.send(line);
        },
    );
    let order: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/demo/order.json")).unwrap(),
    )
    .unwrap();
    let placed = post_order(&host, &order, &uuid::Uuid::new_v4().to_string(), &[]).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = tokio::time::timeout_at(deadline.into(), heard.recv())
            .await
            .expect("a heartbeat within the deadline")
            .expect("the heartbeat runs");
        assert!(line.contains("... test "), "{line}");
        if line.contains("1 of 1 orders final, 0 messages queued, 0 dead letters") {
            break;
        }
    }
}

#[tokio::test]
async fn an_order_placed_over_http_flows_through_every_real_function() {
    let binaries = workspace_root().join("target/debug");
    assert!(
        binaries.join("create-order").exists(),
        "build the functions first (`make functions`, which `make test` runs)"
    );
    let host = pipeline_host().await;
    assert!(
        host.api_address.ip().is_loopback(),
        "the API listens on loopback only"
    );
    assert!(
        host.emulator
            .endpoint_url()
            .starts_with("http://127.0.0.1:")
    );

    seed_stock(&host, "SKU-MUG", 5).await;
    let order = json!({"customer_id": "cust-http1", "currency": "EUR",
        "items": [{"sku": "SKU-MUG", "quantity": 2, "unit_price_minor": 500}], "payment_token": "tok_visa"});
    let created = post_order(&host, &order, "http-e2e-1", &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = serde_json::from_str::<Value>(&created.body).unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_string();

    let deadline = Instant::now() + DEADLINE;
    loop {
        let read = http_client::send(
            Method::GET,
            &format!("{}/orders/{id}", host.api_url()),
            &[],
            None,
        )
        .await
        .unwrap();
        let status = serde_json::from_str::<Value>(&read.body).unwrap()["status"].clone();
        if status == "CONFIRMED" {
            break;
        }
        assert!(Instant::now() < deadline, "order stuck in {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Unknown routes answer like a REST API: 403, Missing Authentication Token.
    let missing = http_client::send(
        Method::GET,
        &format!("{}/nowhere", host.api_url()),
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!(missing.status, 403);

    // Every process reported its cold start once, in a platform report.
    let reports: Vec<Value> = host
        .logs
        .lines()
        .iter()
        .filter_map(|l| l.json())
        .filter(|j| j["type"] == "platform.report")
        .collect();
    assert!(
        reports
            .iter()
            .any(|r| r["record"]["metrics"]["initDurationMs"].is_number())
    );
    assert!(reports.iter().all(|r| {
        r["record"]["metrics"]["maxMemoryUsedMB"]
            .as_u64()
            .is_some_and(|m| m > 0)
    }));
}

const MISBEHAVING_TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: provided.al2023, Handler: bootstrap}
Resources:
  WorkDeadLetterQueue:
    Type: AWS::SQS::Queue
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 6
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn
        maxReceiveCount: 5
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 1
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 1
"#;

async fn misbehaving_host(state: &std::path::Path) -> Host {
    let template = state.join("template.yaml");
    std::fs::write(&template, MISBEHAVING_TEMPLATE).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misbehaving_function.py");
    let python = workspace_root().join(".venv/bin/python");
    let mut options = HostOptions {
        template,
        api_port: 0,
        overrides: HashMap::from([(
            "Worker".to_string(),
            (python, vec![script.to_string_lossy().into_owned()]),
        )]),
        ..HostOptions::default()
    };
    options
        .extra_env
        .insert("STATE_DIR".into(), state.to_string_lossy().into_owned());
    Host::start(options, Logs::default()).await.unwrap()
}

async fn wait_for_handled(state: &std::path::Path, body: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let handled = std::fs::read_to_string(state.join("handled")).unwrap_or_default();
        if handled.lines().any(|l| l == body) {
            return;
        }
        assert!(Instant::now() < deadline, "{body} was never handled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reports_with(host: &Host, status: &str) -> usize {
    host.logs
        .lines()
        .iter()
        .filter_map(|l| l.json())
        .filter(|j| j["type"] == "platform.report" && j["record"]["status"] == status)
        .count()
}

fn state_dir(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target/local-tests")
        .join(format!("{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_process_killed_mid_invocation_is_reported_and_its_message_retried() {
    let state = state_dir("crash");
    let host = misbehaving_host(&state).await;
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    sqs.send_message()
        .queue_url(host.stack.queue_url("WorkQueue").unwrap())
        .message_body("crash-once")
        .send()
        .await
        .unwrap();
    wait_for_handled(&state, "crash-once").await;
    assert_eq!(
        reports_with(&host, "error"),
        1,
        "the crash is reported like Lambda's error"
    );
    let exited = host.logs.lines().iter().any(|l| l.text.contains("exited"));
    assert!(exited, "the host says the runtime exited");
}

#[tokio::test]
async fn an_invocation_over_its_timeout_is_killed_reported_and_redriven() {
    let state = state_dir("timeout");
    let host = misbehaving_host(&state).await;
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let started = Instant::now();
    sqs.send_message()
        .queue_url(host.stack.queue_url("WorkQueue").unwrap())
        .message_body("sleep-once")
        .send()
        .await
        .unwrap();
    wait_for_handled(&state, "sleep-once").await;
    assert_eq!(
        reports_with(&host, "timeout"),
        1,
        "one timed-out invocation"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the sleeping process was killed at its 1 s timeout, not left to finish"
    );
    assert!(
        host.logs
            .lines()
            .iter()
            .any(|l| l.text.contains("timed out"))
    );
}

/// Every descendant of `pid`, from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The parent pid is the second field after the command in parentheses.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(parent) = parent {
            parents.entry(parent).or_default().push(child);
        }
    }
    let mut found = Vec::new();
    let mut stack = vec![pid];
    while let Some(next) = stack.pop() {
        for child in parents.get(&next).cloned().unwrap_or_default() {
            found.push(child);
            stack.push(child);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn dev_stops_everything_on_ctrl_c() {
    use tokio::io::AsyncBufReadExt;
    let mut dev = tokio::process::Command::new(env!("CARGO_BIN_EXE_local"))
        .arg("dev")
        .env("API_PORT", "0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = dev.id().unwrap();
    let mut lines = tokio::io::BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut api = String::new();
    let mut banner = String::new();
    while let Ok(Some(line)) = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
    {
        banner.push_str(&line);
        banner.push('\n');
        if let Some(rest) = line.strip_prefix("API") {
            api = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert!(banner.contains("no authentication"), "{banner}");
    // Start a function process, so there is something to stop.
    let missing = http_client::send(Method::GET, &format!("{api}/orders/none"), &[], None)
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let children = descendants(pid);
    assert!(
        children.len() >= 2,
        "the emulator and a function run: {children:?}"
    );

    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(DEADLINE, dev.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while children.iter().any(|c| alive(*c)) {
        assert!(
            Instant::now() < deadline,
            "orphans left behind: {children:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_demo_passes() {
    let host = pipeline_host().await;
    let passed = local::demo::run(&host, &workspace_root().join("events/demo"))
        .await
        .unwrap();
    assert!(
        passed,
        "make demo's scenarios all reach their expected states"
    );
}

#[tokio::test]
async fn the_smoke_test_passes_against_the_local_cloud() {
    let host = pipeline_host().await;
    let stack = Deployed::local(&host);

    let report = smoke::run(
        &host.sdk,
        &stack,
        &workspace_root().join("events/demo"),
        DEADLINE,
    )
    .await
    .unwrap();

    assert!(report.passed(), "{report}");
    let states: Vec<_> = report
        .orders
        .iter()
        .map(|o| (o.name.as_str(), o.status.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("happy order", "CONFIRMED"),
            ("declined card", "PAYMENT_FAILED"),
            ("out of stock", "CANCELLED"),
            ("same order twice, one key", "CONFIRMED"),
        ]
    );
    let checked: Vec<_> = report
        .dead_letters
        .iter()
        .map(|(q, _)| q.as_str())
        .collect();
    for queue in [
        "RelayDeadLetterQueue",
        "PaymentDeadLetterQueue",
        "InventoryDeadLetterQueue",
        "NotificationDeadLetterQueue",
    ] {
        assert!(checked.contains(&queue), "{queue} is checked: {checked:?}");
    }
}

#[tokio::test]
async fn the_smoke_test_fails_when_an_order_does_not_reach_its_state() {
    // An inventory function that never asks for work: paid orders stay PAID.
    let host = Host::start(
        HostOptions {
            api_port: 0,
            overrides: HashMap::from([(
                "InventoryFunction".to_string(),
                (
                    PathBuf::from("/bin/sh"),
                    vec!["-c".into(), "sleep 600".into()],
                ),
            )]),
            ..HostOptions::default()
        },
        Logs::default(),
    )
    .await
    .unwrap();

    let report = smoke::run(
        &host.sdk,
        &Deployed::local(&host),
        &workspace_root().join("events/demo"),
        Duration::from_secs(15),
    )
    .await
    .unwrap();

    assert!(!report.passed(), "{report}");
    let happy = &report.orders[0];
    assert_eq!(
        (happy.name.as_str(), happy.status.as_str()),
        ("happy order", "PAID")
    );
    assert!(report.to_string().contains("FAIL  happy order"), "{report}");
}

/// Sums the values of one EMF metric across every EMF line (histograms: their count).
fn emf_total(lines: &[Value], name: &str) -> f64 {
    lines
        .iter()
        .filter(|j| j["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "RustOrderPipeline")
        .map(|j| match &j[name] {
            Value::Number(n) => n.as_f64().unwrap_or_default(),
            Value::Array(values) => values.len() as f64,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn one_order_is_followed_through_every_function_by_its_json_logs_and_metrics() {
    let host = pipeline_host().await;
    seed_stock(&host, "SKU-LOG", 5).await;
    let order = json!({"customer_id": "cust-logs1", "currency": "EUR",
        "items": [{"sku": "SKU-LOG", "quantity": 1, "unit_price_minor": 700}],
        "payment_token": "tok_visa"});
    let correlation = [("x-correlation-id", "obs-order-1")];
    let created = post_order(&host, &order, "observability-1", &correlation).await;
    assert_eq!(created.status, 201, "{}", created.body);
    // A retry with the same key: a warm invocation, answered by a replay.
    let replayed = post_order(&host, &order, "observability-1", &correlation).await;
    assert_eq!(replayed.status, 201);

    // Wait for the pipeline to finish: the confirmation is the last notification.
    let deadline = Instant::now() + DEADLINE;
    let lines = loop {
        let lines: Vec<Value> = host.logs.lines().iter().filter_map(|l| l.json()).collect();
        if emf_total(&lines, "NotificationsSent") >= 2.0 {
            break lines;
        }
        assert!(Instant::now() < deadline, "the order never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all = host.logs.lines();

    // Every line every function wrote is one JSON object.
    for line in all.iter().filter(|l| l.function != "host") {
        assert!(
            line.json().is_some_and(|j| j.is_object()),
            "{}: not a JSON object: {}",
            line.function,
            line.text
        );
    }
    let app_lines: Vec<&Value> = lines
        .iter()
        .filter(|j| j["message"].is_string() && j["_aws"].is_null() && j["type"].is_null())
        .collect();
    assert!(!app_lines.is_empty());
    for line in &app_lines {
        for field in ["timestamp", "level", "function"] {
            assert!(line[field].is_string(), "{field} in {line}");
        }
        assert!(line["cold_start"].is_boolean(), "cold_start in {line}");
        if line["invocation"].is_u64() {
            assert!(line["requestId"].is_string(), "request id in {line}");
        }
    }
    // Exactly one line per process says `cold_start: true`: the one opening its first
    // invocation. So per function, as many as the cold starts the host reported.
    let mut cold_lines: std::collections::BTreeMap<&str, usize> = Default::default();
    for line in app_lines.iter().filter(|j| j["cold_start"] == true) {
        assert_eq!(line["invocation"], 1, "{line}");
        assert!(line["requestId"].is_string(), "{line}");
        *cold_lines
            .entry(line["function"].as_str().unwrap())
            .or_default() += 1;
    }
    let mut cold_reports: std::collections::BTreeMap<&str, usize> = Default::default();
    for line in &all {
        if line.json().is_some_and(|j| {
            j["type"] == "platform.report" && j["record"]["metrics"]["initDurationMs"].is_number()
        }) {
            *cold_reports.entry(line.function.as_str()).or_default() += 1;
        }
    }
    assert_eq!(cold_lines, cold_reports, "one cold-start line per process");

    // One correlation id finds the order's whole path.
    let path: std::collections::BTreeSet<&str> = app_lines
        .iter()
        .filter(|j| j["correlation_id"] == "obs-order-1")
        .filter_map(|j| j["function"].as_str())
        .collect();
    for function in [
        "CreateOrderFunction",
        "EventRelayFunction",
        "PaymentFunction",
        "InventoryFunction",
        "NotificationFunction",
    ] {
        assert!(
            path.contains(function),
            "{function} logs the correlation id; found in {path:?}"
        );
    }
    let order_id = serde_json::from_str::<Value>(&created.body).unwrap()["order_id"].clone();
    for line in app_lines.iter().filter(|j| j["order_id"] == order_id) {
        assert_eq!(line["correlation_id"], "obs-order-1", "{line}");
    }

    // Business metrics, as EMF lines, with the right values.
    for (metric, expected) in [
        ("OrdersPlaced", 1.0),
        ("IdempotentReplays", 1.0),
        ("PaymentsSucceeded", 1.0),
        ("OrdersConfirmed", 1.0),
        ("NotificationsSent", 2.0),
        ("OrderCompletionLatency", 1.0),
        ("PoisonMessages", 0.0),
    ] {
        assert_eq!(emf_total(&lines, metric), expected, "{metric}");
    }
    // One cold-start metric per process that started (each reported an init duration).
    let cold_starts = lines
        .iter()
        .filter(|j| j["type"] == "platform.report")
        .filter(|j| j["record"]["metrics"]["initDurationMs"].is_number())
        .count();
    assert!(cold_starts >= 5);
    assert_eq!(emf_total(&lines, "ColdStart"), cold_starts as f64);

    // Secrets never reach a log line: not the payment token, not the gateway key.
    let env = host.stack.function_env("PaymentFunction").unwrap();
    let secret_id = env
        .iter()
        .find(|(key, _)| key.contains("SECRET"))
        .map(|(_, value)| value.clone())
        .expect("the payment function is told where its secret is");
    let secret = aws_sdk_secretsmanager::Client::new(&host.sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .unwrap()
        .secret_string
        .unwrap();
    for line in &all {
        assert!(!line.text.contains("tok_visa"), "{}", line.text);
        assert!(!line.text.contains(&secret), "{}", line.text);
    }
}

/// The documented budget: `docs/aws-requests.md`'s table, as (function, operation) -> n.
fn documented_requests() -> local::emulator::RequestCounts {
    let doc = std::fs::read_to_string(workspace_root().join("docs/aws-requests.md")).unwrap();
    let mut budget = local::emulator::RequestCounts::new();
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
        let count: u64 = cells[3]
            .parse()
            .unwrap_or_else(|_| panic!("a count in {row}"));
        budget
            .entry(cells[1].to_owned())
            .or_default()
            .insert(cells[2].to_owned(), count);
    }
    budget
}

#[tokio::test]
async fn a_happy_order_costs_exactly_the_documented_aws_requests() {
    let host = pipeline_host().await;
    seed_stock(&host, "SKU-REQ", 5).await;
    let order = json!({"customer_id": "cust-reqs1", "currency": "EUR",
        "items": [{"sku": "SKU-REQ", "quantity": 1, "unit_price_minor": 700}],
        "payment_token": "tok_visa"});
    let created = post_order(&host, &order, "requests-1", &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);

    // The functions' own requests (the host's polling signs as `test` and is left out).
    // Counts only grow, so wait until they reach the budget, then compare exactly.
    let budget = documented_requests();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut counts = host.emulator.request_counts().await.unwrap();
        counts.remove("test");
        let reached = budget.iter().all(|(function, operations)| {
            operations.iter().all(|(operation, n)| {
                counts
                    .get(function)
                    .and_then(|c| c.get(operation))
                    .is_some_and(|m| m >= n)
            })
        });
        if reached || Instant::now() >= deadline {
            assert_eq!(
                counts, budget,
                "one happy order's AWS requests per function differ from docs/aws-requests.md"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A queue of its own on `emulator`, with a redrive policy to `dead_letters` (an ARN)
/// after `max_receives` receives if given, and the mapping a function with
/// `ReportBatchItemFailures` would have on it.
async fn worker_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letters: Option<(&str, u32)>,
) -> local::provision::QueueMapping {
    let mut create = sqs.create_queue().queue_name(name);
    if let Some((arn, max_receives)) = dead_letters {
        create = create.attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives}).to_string(),
        );
    }
    let queue_url = create.send().await.unwrap().queue_url.unwrap();
    local::provision::QueueMapping {
        function: "Worker".into(),
        queue_arn: queue_attribute(sqs, &queue_url, QueueAttributeName::QueueArn).await,
        queue_url,
        batch_size: 10,
        batching_window_seconds: 0,
        report_batch_item_failures: true,
        maximum_concurrency: None,
        filters: vec![],
    }
}

async fn queue_attribute(sqs: &aws_sdk_sqs::Client, url: &str, name: QueueAttributeName) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&name)
        .unwrap()
}

/// (visible, in flight) messages of a queue.
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let depth = local::queues::depth(sqs, url).await.unwrap();
    (depth.waiting, depth.in_flight)
}

/// Waits until a queue's depth is `expected`; its depth at the deadline otherwise.
async fn depth_reaches(sqs: &aws_sdk_sqs::Client, url: &str, expected: (u64, u64)) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = depth(sqs, url).await;
        if now == expected || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send_all(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[&str]) {
    for body in bodies {
        sqs.send_message()
            .queue_url(url)
            .message_body(*body)
            .send()
            .await
            .unwrap();
    }
}

/// One poll that delivers the whole batch.
async fn poll_batch(
    poller: &local::queues::QueuePoller,
    function: &dyn local::invoke::Invoke,
    size: usize,
) -> local::queues::QueueReport {
    let report = poller.poll_once(function).await.unwrap();
    assert_eq!(report.delivered, size, "one batch: {report:?}");
    report
}

/// An SQS mapping with `FilterCriteria` invokes the function only with the messages
/// that match (a JSON body matched field by field), and deletes the others without an
/// invocation, as Lambda does: they neither reach the function nor stay on the queue.
#[tokio::test]
async fn an_sqs_filter_delivers_the_matches_and_deletes_the_rest_unseen() {
    let emulator = local::emulator::Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut mapping = worker_queue(&sqs, "Filtered", None).await;
    mapping.filters = vec![
        local::filter::Filter::parse(&json!({"body": {"type": [{"prefix": "Order"}]}})).unwrap(),
    ];
    let queue = mapping.queue_url.clone();
    send_all(
        &sqs,
        &queue,
        &[
            r#"{"type": "OrderPlaced"}"#,
            r#"{"type": "PaymentFailed"}"#,
            "not json",
            r#"{"type": "OrderConfirmed"}"#,
        ],
    )
    .await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let function = {
        let seen = seen.clone();
        local::invoke::from_fn(move |event: Value| {
            let seen = seen.clone();
            async move {
                for record in event["Records"].as_array().unwrap() {
                    seen.lock()
                        .unwrap()
                        .push(record["body"].as_str().unwrap().to_owned());
                }
                Ok(json!({"batchItemFailures": []}))
            }
        })
    };
    let poller = local::queues::QueuePoller::new(&sdk, mapping);
    let mut reports = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while reports
        .iter()
        .map(|r: &local::queues::QueueReport| r.delivered + r.filtered_out)
        .sum::<usize>()
        < 4
    {
        assert!(Instant::now() < deadline, "{reports:?}");
        reports.push(poller.poll_once(&function).await.unwrap());
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            r#"{"type": "OrderConfirmed"}"#,
            r#"{"type": "OrderPlaced"}"#
        ]
    );
    assert_eq!(reports.iter().map(|r| r.filtered_out).sum::<usize>(), 2);
    assert!(
        reports.iter().all(|r| r.unsettled.is_empty()),
        "{reports:?}"
    );
    assert_eq!(
        depth_reaches(&sqs, &queue, (0, 0)).await,
        (0, 0),
        "nothing left"
    );
}

/// Lambda's poller settles each message of a batch on its own: a failed message whose
/// visibility change fails (someone deleted it meanwhile) neither stops the handled ones
/// from being deleted nor the next failed one from being made visible for its retry,
/// and the report names it.
#[tokio::test]
async fn a_failed_visibility_change_leaves_the_rest_of_the_batch_settled() {
    let emulator = local::emulator::Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mapping = worker_queue(&sqs, "SettleEach", None).await;
    let queue = mapping.queue_url.clone();
    send_all(&sqs, &queue, &["gone", "handled-1", "handled-2", "retry"]).await;
    let gone_id = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let function = {
        let (sqs, queue, gone_id) = (sqs.clone(), queue.clone(), gone_id.clone());
        local::invoke::from_fn(move |event: Value| {
            let (sqs, queue, gone_id) = (sqs.clone(), queue.clone(), gone_id.clone());
            async move {
                let mut failures = Vec::new();
                for record in event["Records"].as_array().unwrap() {
                    let id = record["messageId"].as_str().unwrap();
                    match record["body"].as_str().unwrap() {
                        "gone" => {
                            // Fails, and is deleted out of band before the host settles.
                            sqs.delete_message()
                                .queue_url(&queue)
                                .receipt_handle(record["receiptHandle"].as_str().unwrap())
                                .send()
                                .await
                                .unwrap();
                            *gone_id.lock().unwrap() = id.to_owned();
                            failures.push(json!({"itemIdentifier": id}));
                        }
                        "retry" => failures.push(json!({"itemIdentifier": id})),
                        _ => {}
                    }
                }
                Ok(json!({"batchItemFailures": failures}))
            }
        })
    };
    let poller = local::queues::QueuePoller::new(&sdk, mapping)
        .redelivery(local::queues::Redelivery::After(Duration::ZERO));

    let report = poll_batch(&poller, &function, 4).await;

    assert_eq!((report.succeeded, report.failed), (2, 2), "{report:?}");
    let unsettled: Vec<(&str, &str)> = report
        .unsettled
        .iter()
        .map(|f| (f.message_id.as_str(), f.operation))
        .collect();
    let gone_id = gone_id.lock().unwrap().clone();
    assert_eq!(unsettled, [(gone_id.as_str(), "ChangeMessageVisibility")]);
    assert_eq!(
        depth_reaches(&sqs, &queue, (1, 0)).await,
        (1, 0),
        "both handled messages deleted, the other failed one visible again"
    );
    let left = sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body(), Some("retry"));
}

/// A DeleteMessageBatch answers per entry: an entry SQS refuses (the message left the
/// queue meanwhile: here the redrive policy moved it to the DLQ) is reported with its id
/// and SQS's reason, and the other entries of the batch are still deleted.
#[tokio::test]
async fn a_refused_delete_entry_is_reported_and_the_others_are_deleted() {
    let emulator = local::emulator::Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq = sqs
        .create_queue()
        .queue_name("SettleEachDlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = queue_attribute(&sqs, &dlq, QueueAttributeName::QueueArn).await;
    let mapping = worker_queue(&sqs, "SettleEach", Some((&dlq_arn, 2))).await;
    let queue = mapping.queue_url.clone();
    send_all(&sqs, &queue, &["moved-away", "handled-1", "handled-2"]).await;
    let moved_id = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let function = {
        let (sqs, queue, dlq, moved_id) =
            (sqs.clone(), queue.clone(), dlq.clone(), moved_id.clone());
        local::invoke::from_fn(move |event: Value| {
            let (sqs, queue, dlq, moved_id) =
                (sqs.clone(), queue.clone(), dlq.clone(), moved_id.clone());
            async move {
                let records = event["Records"].as_array().unwrap();
                let record = records.iter().find(|r| r["body"] == "moved-away").unwrap();
                *moved_id.lock().unwrap() = record["messageId"].as_str().unwrap().to_owned();
                // Every record is handled, but meanwhile this one is received again
                // until the redrive policy moves it to the DLQ.
                sqs.change_message_visibility()
                    .queue_url(&queue)
                    .receipt_handle(record["receiptHandle"].as_str().unwrap())
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
                let deadline = Instant::now() + DEADLINE;
                while depth(&sqs, &dlq).await.0 == 0 {
                    assert!(Instant::now() < deadline, "never moved to the DLQ");
                    sqs.receive_message()
                        .queue_url(&queue)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .unwrap();
                }
                Ok(json!({"batchItemFailures": []}))
            }
        })
    };
    let poller = local::queues::QueuePoller::new(&sdk, mapping);

    let report = poll_batch(&poller, &function, 3).await;

    assert_eq!(report.succeeded, 3, "{report:?}");
    let moved_id = moved_id.lock().unwrap().clone();
    let [failure] = report.unsettled.as_slice() else {
        panic!("one message not deleted: {report:?}");
    };
    assert_eq!(failure.message_id, moved_id);
    assert_eq!(failure.operation, "DeleteMessageBatch");
    assert!(
        failure.reason.contains("ReceiptHandleIsInvalid"),
        "{}",
        failure.reason
    );
    assert_eq!(
        depth_reaches(&sqs, &queue, (0, 0)).await,
        (0, 0),
        "the handled messages are deleted"
    );
}

/// `make redrive` prints what untrusted senders wrote with its control characters
/// escaped, so a hostile body cannot clear the screen or overwrite the lines before it,
/// while ordinary Unicode stays readable.
#[tokio::test]
async fn redrive_prints_a_hostile_body_and_reason_escaped() {
    let emulator = local::emulator::Emulator::start().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config());
    let dlq = sqs
        .create_queue()
        .queue_name("HostileDlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let reason = aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value("bad\u{1b}]0;owned\u{7} \u{9b}31m\u{202e}txt.exe")
        .build()
        .unwrap();
    sqs.send_message()
        .queue_url(&dlq)
        .message_body("Grüße\u{1b}[2J\rpayment accepted\nnext line")
        .message_attributes(aws_adapters::REASON_ATTRIBUTE, reason)
        .send()
        .await
        .unwrap();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
        .arg(&dlq)
        .env("AWS_ENDPOINT_URL", emulator.endpoint_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();

    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for raw in ['\u{1b}', '\r', '\u{7}', '\u{9b}', '\u{202e}'] {
        assert!(!stdout.contains(raw), "{raw:?} printed raw: {stdout:?}");
    }
    assert!(
        stdout.contains(r"body: Grüße\u{1b}[2J\rpayment accepted\nnext line"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r"reason: bad\u{1b}]0;owned\u{7} \u{9b}31m\u{202e}txt.exe"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&format!("1 message(s) in {dlq}\n")),
        "{stdout}"
    );
}

// ------------------------------------------ the workshop's sample outputs (docs/workshop/)

/// A lab's text, e.g. `lab_text("lab-4-poison-and-redrive")`.
fn lab_text(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join(format!("docs/workshop/{name}.md"))).unwrap()
}

/// The ```text blocks of a lab's step `### <step>. …`, in order, without their fences.
fn samples(lab: &str, step: u32) -> Vec<String> {
    let heading = format!("\n### {step}. ");
    let start = lab
        .find(&heading)
        .unwrap_or_else(|| panic!("the lab has no step {step}"));
    let rest = &lab[start + heading.len()..];
    let section = rest.find("\n##").map_or(rest, |end| &rest[..end]);
    section
        .split("```text\n")
        .skip(1)
        .map(|block| block.split("\n```").next().unwrap_or_default().to_owned())
        .collect()
}

/// A line with what changes from run to run made equal: every UUID becomes `<id>`, every
/// word with a digit in it (times, durations, ports, charge ids) `#`, and every run of
/// spaces one space (columns widen with their numbers).
fn shape(line: &str) -> String {
    let mut without_ids = String::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let uuid = rest
            .get(..36)
            .filter(|s| s.as_bytes()[8] == b'-' && uuid::Uuid::try_parse(s).is_ok());
        if uuid.is_some() {
            without_ids.push_str("<id>");
            rest = &rest[36..];
        } else {
            without_ids.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let mut shaped = String::new();
    let mut word = String::new();
    for c in without_ids.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        if word.chars().any(|w| w.is_ascii_digit()) {
            shaped.push('#');
        } else {
            shaped.push_str(&word);
        }
        word.clear();
        shaped.push(c);
    }
    shaped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every line of `text`, shaped.
fn shapes(text: &str) -> Vec<String> {
    text.lines().map(shape).collect()
}

/// The same lines, shaped, in any order: for lines that come from processes running side
/// by side, whose order changes from run to run.
fn shapes_sorted(text: &str) -> Vec<String> {
    let mut lines = shapes(text);
    lines.sort();
    lines
}

/// `(order, from, to)` of a demo status line: `    0.90s  happy order   PENDING -> CONFIRMED`.
fn status_change(line: &str) -> (String, String, String) {
    let parsed = line.trim_start().split_once("s  ").and_then(|(_, rest)| {
        let (before, to) = rest.rsplit_once(" -> ")?;
        let (order, from) = before.trim_end().rsplit_once(' ')?;
        Some((
            order.trim().to_owned(),
            from.to_owned(),
            to.trim().to_owned(),
        ))
    });
    parsed.unwrap_or_else(|| panic!("not a status line: {line:?}"))
}

/// The readable lines (as `make dev` prints them) `function` has written so far.
fn readable_lines(host: &Host, function: &str) -> Vec<String> {
    host.logs
        .lines()
        .iter()
        .filter(|l| l.function == function)
        .map(|l| local::host::logs::readable(l, false))
        .collect()
}

/// Waits until `function` has written a line whose JSON `found` accepts; that JSON.
async fn wait_for_line(host: &Host, function: &str, found: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = host
            .logs
            .lines()
            .iter()
            .filter(|l| l.function == function)
            .filter_map(|l| l.json())
            .find(|j| found(j));
        if let Some(line) = line {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "{function} never wrote that line"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lab 1's samples are what `make demo` and `make dev` print, but for ids, times and
/// ports: the happy order's timeline has the same steps, the status lines take each
/// order from PENDING to the state it really ends in, the `make dev` line reads the same,
/// and the replayed answer is the first one, verbatim, `PENDING` while `GET` says
/// `CONFIRMED`.
#[tokio::test]
async fn lab_1_samples_are_what_the_demo_and_make_dev_print() {
    let lab = lab_text("lab-1-run-the-demo");

    // `make demo` runs this binary.
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_local"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8(demo.stdout).unwrap();
    assert!(
        demo.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let block = |first: &str| -> Vec<&str> {
        stdout
            .lines()
            .skip_while(|l| !l.starts_with(first))
            .take_while(|l| !l.is_empty())
            .collect()
    };

    // Step 2: the status lines. Which steps the demo sees depends on timing, so each
    // order's lines in the lab must go from PENDING to where the order really ends.
    let real = block("waiting for the orders");
    let sample = &samples(&lab, 2)[0];
    assert_eq!(sample.lines().next(), real.first().copied());
    let mut real_ends = std::collections::BTreeMap::new();
    for line in &real[1..] {
        let (order, _, to) = status_change(line);
        real_ends.insert(order, to);
    }
    let mut sample_ends = std::collections::BTreeMap::new();
    for line in sample.lines().skip(1) {
        let (order, from, to) = status_change(line);
        let was = sample_ends.insert(order.clone(), to.clone());
        assert_eq!(
            from,
            was.unwrap_or_else(|| "PENDING".to_owned()),
            "lab 1 step 2: {order} jumps"
        );
    }
    assert_eq!(sample_ends, real_ends, "lab 1 step 2: the final states");

    // Step 3: the happy order's timeline: the same steps; functions running side by side
    // may write theirs in another order.
    let real = block("happy order (");
    let sample = &samples(&lab, 3)[0];
    assert_eq!(
        shapes_sorted(sample),
        shapes_sorted(&real.join("\n")),
        "lab 1 step 3:\n{}",
        real.join("\n")
    );

    // Steps 5 and 6, on `make dev`'s pipeline.
    let host = pipeline_host().await;
    seed_stock(&host, "SKU-MUG", 5).await;
    let order: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/demo/order.json")).unwrap(),
    )
    .unwrap();
    let key = uuid::Uuid::new_v4().to_string();
    let correlation = [("x-correlation-id", "lab1-first-order")];
    // `make dev` prints what customers are told from a queue of its own on their topic.
    let watch = local::demo::watch_notifications(&host, "lab-1-notifications")
        .await
        .unwrap();
    let created = post_order(&host, &order, &key, &correlation).await;
    let sample = &samples(&lab, 5)[0];
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(sample.lines().next(), Some("HTTP/1.1 201 Created"));
    for header in sample.lines().skip(1).take_while(|l| !l.is_empty()) {
        let name = header.split(':').next().unwrap_or_default();
        assert!(created.headers.contains_key(name), "lab 1 step 5: {header}");
    }
    assert_eq!(
        sample.lines().last().map(shape),
        Some(shape(&created.body)),
        "lab 1 step 5: the answer"
    );

    let paid = wait_for_line(&host, "PaymentFunction", |j| {
        j["message"] == "payment succeeded"
    })
    .await;
    let shown = readable_lines(&host, "PaymentFunction")
        .into_iter()
        .find(|l| l.contains(paid["charge_id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(
        shapes(&samples(&lab, 6)[0]),
        [shape(&shown)],
        "lab 1 step 6: {shown}"
    );

    // The replay is the first answer, verbatim: PENDING, while the order is CONFIRMED.
    let id = serde_json::from_str::<Value>(&created.body).unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let read = http_client::send(
            Method::GET,
            &format!("{}/orders/{id}", host.api_url()),
            &[],
            None,
        )
        .await
        .unwrap();
        if read.body.contains(r#""status":"CONFIRMED""#) {
            break;
        }
        assert!(Instant::now() < deadline, "never confirmed: {}", read.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replayed = post_order(&host, &order, &key, &correlation).await;
    assert_eq!(replayed.status, 201);
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(replayed.body, created.body, "the first answer, verbatim");
    assert!(created.body.contains(r#""status":"PENDING""#));
    // Step 6's notification lines: the order's two, as `make dev` prints them.
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let mut told = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while told.len() < 2 {
        assert!(Instant::now() < deadline, "notifications: {told:?}");
        let received = sqs
            .receive_message()
            .queue_url(&watch)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            told.push(local::demo::notification_line(
                message.body().unwrap_or_default(),
            ));
            sqs.delete_message()
                .queue_url(&watch)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(
        shapes_sorted(&samples(&lab, 6)[1]),
        shapes_sorted(&told.join("\n")),
        "lab 1 step 6: the notifications:\n{}",
        told.join("\n")
    );
    let sample_replay = &samples(&lab, 6)[2];
    assert!(sample_replay.contains("\nidempotent-replayed: true\n"));
    assert_eq!(
        sample_replay.lines().last(),
        sample.lines().last(),
        "lab 1 step 6: the replay is the answer of step 5, verbatim"
    );
}

/// Runs `make redrive`'s binary against `host`'s emulator; its standard output.
fn redrive(host: &Host, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
        .args(args)
        .env("AWS_ENDPOINT_URL", host.emulator.endpoint_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The `message_id=` of the first line of `text` that has one.
fn message_id_in(text: &str) -> &str {
    let at = text.find("message_id=").expect("a message_id") + "message_id=".len();
    &text[at..at + 36]
}

/// Waits until payment has handled `n` poison messages, each to its REPORT and its
/// metric, and nothing else; every line payment wrote.
async fn after_poison(host: &Host, n: usize) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let lines = readable_lines(host, "PaymentFunction");
        let count = |word: &str| lines.iter().filter(|l| l.contains(word)).count();
        if count(" METRIC PoisonMessages=") == n && count(" REPORT ") == n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "payment never handled poison message {n}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lab 4's samples are what `make dev` and `make redrive` print, but for ids, times and
/// ports, and the listing names a forwarded message by the `message_id` of its ERROR
/// line: after the poison message, after moving it back (it comes back once, with a new
/// id), and for a message without a reason.
#[tokio::test]
async fn lab_4_samples_are_what_make_dev_and_make_redrive_print() {
    let lab = lab_text("lab-4-poison-and-redrive");
    let host = pipeline_host().await;
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let queue = host.stack.queue_url("PaymentQueue").unwrap().to_owned();
    let dlq = host
        .stack
        .queue_url("PaymentDeadLetterQueue")
        .unwrap()
        .to_owned();
    // Step 3: the poison message, as the lab sends it.
    let poison = r#"{"type": "OrderPlaced", "version": 1"#;
    assert!(lab.contains(&format!("MessageBody='{poison}'")));
    sqs.send_message()
        .queue_url(&queue)
        .message_body(poison)
        .send()
        .await
        .unwrap();
    let logged = after_poison(&host, 1).await.join("\n");
    assert_eq!(depth_reaches(&sqs, &dlq, (1, 0)).await, (1, 0));
    let sample_log = &samples(&lab, 3)[0];
    assert_eq!(
        shapes_sorted(sample_log),
        shapes_sorted(&logged),
        "lab 4 step 3:\n{logged}"
    );

    // Step 4: the listing names the ERROR line's message_id.
    let listed = redrive(&host, &[&dlq]);
    let sample_list = &samples(&lab, 4)[0];
    assert_eq!(
        shapes(sample_list),
        shapes(&listed),
        "lab 4 step 4:\n{listed}"
    );
    assert!(
        listed.starts_with(&format!("original id {} ", message_id_in(&logged))),
        "{listed}"
    );
    assert!(
        sample_list.starts_with(&format!("original id {} ", message_id_in(sample_log))),
        "lab 4: the listing's id in step 4 is the ERROR line's of step 3"
    );

    // Step 5: moved back once; it fails again at once, with a new id, and is listed by it.
    let moved = redrive(&host, &[&dlq, "--to", &queue]);
    let sample_step_5 = samples(&lab, 5);
    assert_eq!(
        shapes(&sample_step_5[0]),
        shapes(&moved),
        "lab 4 step 5: {moved}"
    );
    let again = after_poison(&host, 2).await;
    let again = again[again.iter().rposition(|l| l.contains(" ERROR ")).unwrap()..].join("\n");
    assert_eq!(
        shapes_sorted(&sample_step_5[1]),
        shapes_sorted(&again),
        "lab 4 step 5:\n{again}"
    );
    assert_eq!(depth_reaches(&sqs, &dlq, (1, 0)).await, (1, 0), "back once");
    let listed = redrive(&host, &[&dlq]);
    assert_eq!(
        shapes(&sample_step_5[2]),
        shapes(&listed),
        "lab 4 step 5:\n{listed}"
    );
    assert!(
        listed.starts_with(&format!("original id {} ", message_id_in(&again))),
        "{listed}"
    );
    assert!(
        sample_step_5[2].starts_with(&format!(
            "original id {} ",
            message_id_in(&sample_step_5[1])
        )),
        "lab 4: the listing's id in step 5 is the new ERROR line's"
    );

    // Step 6: a message sent to the DLQ by hand: no reason, received 0 times.
    sqs.purge_queue().queue_url(&dlq).send().await.unwrap();
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/payment.json")).unwrap(),
    )
    .unwrap();
    sqs.send_message()
        .queue_url(&dlq)
        .message_body(event["Records"][0]["body"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let listed = redrive(&host, &[&dlq]);
    assert_eq!(
        shapes(&samples(&lab, 6)[0]),
        shapes(&listed),
        "lab 4 step 6:\n{listed}"
    );
    assert!(
        listed.contains("received 0 time(s) before this listing"),
        "{listed}"
    );
    let moved = redrive(&host, &[&dlq, "--to", &queue]);
    assert!(moved.starts_with("moved 1 message(s)"), "{moved}");
    wait_for_line(&host, "PaymentFunction", |j| {
        j["message"] == "order is not where this event expects it; nothing to do"
    })
    .await;
    assert_eq!(
        redrive(&host, &[&dlq]),
        format!("0 message(s) in {dlq}\n"),
        "lab 4 step 6"
    );
}
