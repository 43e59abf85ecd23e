//! The local host end to end: real processes behind the Runtime API, the HTTP API on
//! loopback, and Lambda's behaviour on crashes and timeouts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emulator::Emulator;
use emulator::http_client;
use emulator::provision::provision;
use emulator::template::Template;
use emulator::workspace_root;
use http::Method;
use lambda_host::invoke::from_fn;
use lambda_host::logs::Logs;
use lambda_host::{Host, HostOptions};
use serde_json::{Value, json};

mod support;
use support::{get_order_as, order_reaches, pipeline_host, post_order, seed_stock};

const DEADLINE: Duration = Duration::from_secs(60);

/// An API whose definition routes to a function that grants API Gateway no permission
/// (it has no Api event, so SAM makes none): on AWS every request on the route is a
/// 500, and the local API says the same.
#[tokio::test]
async fn a_route_to_a_function_without_permission_is_marked_so() {
    let template = r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: provided.al2023, Handler: bootstrap}
Resources:
  Lonely:
    Type: AWS::Serverless::Function
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      DefinitionBody:
        openapi: "3.0.1"
        info: {title: t, version: "1"}
        paths:
          /lonely:
            get:
              x-amazon-apigateway-integration:
                type: aws_proxy
                httpMethod: POST
                uri: !Sub "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Lonely.Arn}/invocations"
"#;
    let emulator = Emulator::start().await.unwrap();
    let stack = provision(
        &emulator.sdk_config(),
        &Template::translate_text(template).unwrap(),
    )
    .await
    .unwrap();
    let routes = stack.api_routes();
    assert_eq!(routes.len(), 1);
    assert_eq!(
        (routes[0].path.as_str(), routes[0].function.as_str()),
        ("/lonely", "Lonely")
    );
    assert!(!routes[0].permitted, "no AWS::Lambda::Permission names it");

    // Served, the route answers as API Gateway does, and the function never runs.
    let invoked = Arc::new(Mutex::new(0));
    let function = {
        let invoked = invoked.clone();
        from_fn(move |_: Value| {
            *invoked.lock().unwrap() += 1;
            async { Ok(json!({"statusCode": 200, "body": "ran"})) }
        })
    };
    let routes = vec![lambda_host::api::Route {
        route: routes[0].clone(),
        function: Arc::new(function),
    }];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = lambda_host::api::router(routes, None)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let answer = emulator::http_client::send(
        http::Method::GET,
        &format!("http://{address}/lonely"),
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body, r#"{"message":"Internal server error"}"#);
    assert_eq!(*invoked.lock().unwrap(), 0);
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
    let alice = [(lambda_host::api::CALLER_HEADER, "alice")];
    let bob = [(lambda_host::api::CALLER_HEADER, "bob")];
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

    order_reaches(&host, &id, "CONFIRMED").await;
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
    // The functions one order goes through, in order.
    let pipeline = [
        "CreateOrderFunction",
        "EventRelayFunction",
        "PaymentFunction",
        "InventoryFunction",
        "NotificationFunction",
    ];
    // Each process says where its init went, before its first invocation
    // (`aws_adapters::init_phases`, what `make bench` reads).
    for function in pipeline {
        let phases: Vec<&str> = app_lines
            .iter()
            .filter(|j| j["function"] == function && j["message"] == "init phases")
            .filter_map(|j| j["phases_us"].as_str())
            .collect();
        assert!(!phases.is_empty(), "{function} logs its init phases");
        for line in phases {
            let names: Vec<&str> = line
                .split_whitespace()
                .filter_map(|pair| pair.split_once('=').map(|(name, _)| name))
                .collect();
            let client = if function == "EventRelayFunction" {
                "client.sns"
            } else {
                "client.dynamodb"
            };
            for phase in ["telemetry", "config", "sdk_config", client, "wiring"] {
                assert!(names.contains(&phase), "{function} times {phase}: {line}");
            }
        }
    }
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
    for function in pipeline {
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
fn documented_requests() -> emulator::RequestCounts {
    let doc = std::fs::read_to_string(workspace_root().join("docs/aws-requests.md")).unwrap();
    let mut budget = emulator::RequestCounts::new();
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
