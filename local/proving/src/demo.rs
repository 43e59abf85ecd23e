//! `make demo`: the scripted tour of the pipeline on the local host.
//!
//! Seeds stock and places the orders of `events/demo/scenarios.json` over HTTP (a happy
//! order, a declined card, an out-of-stock order, one order submitted twice with one
//! idempotency key) and injects a poison message, shows progress while the orders move,
//! then prints a timeline per order and a summary: final states, charges and refunds,
//! notifications, cold starts, and what is in every DLQ. It passes only if every order
//! reached its expected state and nothing was lost.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::smoke::{self, Api, Deployed, Placed};
use lambda_host::Host;
use lambda_host::logs::LogLine;

/// The demo could not run (as opposed to: it ran and found a problem).
#[derive(Debug, thiserror::Error)]
#[error("demo: {0}")]
pub struct DemoError(String);

impl From<smoke::SmokeError> for DemoError {
    fn from(error: smoke::SmokeError) -> Self {
        Self(error.to_string())
    }
}

/// Seeds the stock in `stock.json` of `scenarios`, as `make smoke` does on AWS.
pub async fn seed(host: &Host, scenarios: &Path) -> Result<(), DemoError> {
    Ok(smoke::seed_stock(&host.sdk, &Deployed::local(host), scenarios).await?)
}

/// A queue of `name` subscribed to the customer notifications topic (raw delivery), so
/// what customers are told can be read back: the demo's summary counts it, and
/// `make dev` prints each notification as it is sent. Returns the queue's URL.
pub async fn watch_notifications(host: &Host, name: &str) -> Result<String, DemoError> {
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let watch = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| DemoError(format!("{e:?}")))?
        .queue_url
        .unwrap_or_default();
    let watch_arn = format!(
        "arn:aws:sqs:{}:{}:{name}",
        emulator::REGION,
        emulator::ACCOUNT_ID
    );
    if let Ok(topic) = host.stack.topic_arn("CustomerNotificationsTopic") {
        aws_sdk_sns::Client::new(&host.sdk)
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(&watch_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .map_err(|e| DemoError(format!("{e:?}")))?;
    }
    Ok(watch)
}

/// One line for a notification a customer was sent (the JSON notification publishes):
/// `notification  order_received  -> cust-1: We received your order …`.
pub fn notification_line(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(n) => format!(
            "notification  {:<16} -> {}: {}",
            n["kind"].as_str().unwrap_or("?"),
            n["customer_id"].as_str().unwrap_or("?"),
            n["message"].as_str().unwrap_or(body)
        ),
        Err(_) => format!("notification  {body}"),
    }
}

/// Runs the demo against a started host, printing as it goes; `Ok(true)` if it passed.
pub async fn run(host: &Host, scenarios: &Path) -> Result<bool, DemoError> {
    let started = SystemTime::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(&host.sdk);
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);

    seed(host, scenarios).await?;

    // Watch what customers are told.
    let watch = watch_notifications(host, "demo-notifications-watch").await?;

    // Place the orders over HTTP, with the client `make smoke` uses on AWS.
    let api = Api::new(&host.api_url(), &host.sdk)?;
    let mut placed = smoke::place(&api, &smoke::scenarios(scenarios)?).await?;

    // Inject the poison message.
    let path = scenarios.join("scenarios.json");
    let script: Value = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|e| DemoError(format!("{}: {e}", path.display())))?;
    let poison = &script["poison"];
    let poison_queue = host
        .stack
        .queue_url(poison["queue"].as_str().unwrap_or_default())
        .map_err(|e| DemoError(e.to_string()))?
        .to_owned();
    let poison_id = sqs
        .send_message()
        .queue_url(&poison_queue)
        .message_body(poison["body"].as_str().unwrap_or_default())
        .send()
        .await
        .map_err(|e| DemoError(format!("{e:?}")))?
        .message_id
        .unwrap_or_default();
    println!(
        "poison message {poison_id} sent to {}",
        poison["queue"].as_str().unwrap_or_default()
    );

    // Progress: poll every order until all are final.
    println!("\nwaiting for the orders to reach a final state...");
    smoke::follow(&api, &mut placed, Duration::from_secs(90), started).await?;
    let private = others_cannot_read(host, &placed).await?;
    // Let the last notifications and the poison message's DLQ move settle.
    settle_dlqs(host, &sqs, Duration::from_secs(20)).await;

    let lines = host.logs.lines();
    print_timelines(&placed, &lines, started);
    let ok = print_summary(host, &placed, &lines, &dynamodb, &sqs, &watch, &poison_id).await?;
    Ok(ok && private)
}

/// Orders belong to their caller: another caller asking for the first order gets the 404
/// of an order that does not exist. Prints what it asked and got; `true` if a 404.
async fn others_cannot_read(host: &Host, placed: &[Placed]) -> Result<bool, DemoError> {
    let Some(first) = placed.first() else {
        return Ok(true);
    };
    let answer = emulator::http_client::send(
        http::Method::GET,
        &format!("{}/orders/{}", host.api_url(), first.order_id),
        &[(lambda_host::api::CALLER_HEADER, "someone-else")],
        None,
    )
    .await
    .map_err(DemoError)?;
    println!(
        "\nanother caller asks for the {} order: {} (an order is its caller's only)",
        first.name, answer.status
    );
    Ok(answer.status == 404)
}

/// Waits until some DLQ has a message (the poison one) or the time is up.
async fn settle_dlqs(host: &Host, sqs: &aws_sdk_sqs::Client, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for (id, url) in host.stack.queues() {
            if !id.contains("DeadLetter") {
                continue;
            }
            let depth = lambda_host::queues::depth(sqs, &url)
                .await
                .unwrap_or_default();
            if depth.waiting > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn field<'a>(json: &'a Value, name: &str) -> Option<&'a str> {
    json[name].as_str().or_else(|| json["span"][name].as_str())
}

fn print_timelines(placed: &[Placed], lines: &[LogLine], started: SystemTime) {
    println!("\n== timeline per order (from the functions' JSON logs) ==");
    println!("   seconds since the demo started, and milliseconds since the order's previous step");
    for order in placed {
        println!(
            "\n{} ({}, correlation {})",
            order.name, order.order_id, order.correlation_id
        );
        let mut previous: Option<f64> = None;
        for line in lines {
            let Some(json) = line.json() else { continue };
            let mine = field(&json, "order_id") == Some(order.order_id.as_str())
                || field(&json, "correlation_id") == Some(order.correlation_id.as_str());
            if !mine {
                continue;
            }
            let at = line
                .at
                .duration_since(started)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            let step = previous.map(|p| (at - p) * 1000.0).unwrap_or_default();
            previous = Some(at);
            let event = field(&json, "event_type")
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default();
            println!(
                "  {at:>6.2}s {step:>+6.0}ms  {:<22} {}{event}",
                line.function,
                json["message"].as_str().unwrap_or_default()
            );
        }
    }
}

async fn print_summary(
    host: &Host,
    placed: &[Placed],
    lines: &[LogLine],
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    watch: &str,
    poison_id: &str,
) -> Result<bool, DemoError> {
    let mut ok = true;
    let mut out = String::new();
    let _ = writeln!(out, "\n== summary ==\n\norders");
    for order in placed {
        let good = order.status == order.expect;
        ok &= good;
        let _ = writeln!(
            out,
            "  {:<28} {:<15} expected {:<15} {}{}",
            order.name,
            order.status,
            order.expect,
            if good { "ok" } else { "MISMATCH" },
            if order.replays > 0 {
                format!("  ({} replayed submission)", order.replays)
            } else {
                String::new()
            }
        );
    }
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for order in placed {
        *by_state.entry(order.status.as_str()).or_default() += 1;
    }
    let _ = writeln!(out, "  by final state: {by_state:?}");

    if let Ok(payments) = host.stack.table_name("PaymentsTable") {
        let items = dynamodb
            .scan()
            .table_name(payments)
            .send()
            .await
            .map_err(|e| DemoError(format!("{e:?}")))?
            .items
            .unwrap_or_default();
        let count = |kind: &str, status: Option<&str>| {
            items
                .iter()
                .filter(|i| {
                    i.get("kind")
                        .and_then(|k| k.as_s().ok())
                        .map(String::as_str)
                        == Some(kind)
                })
                .filter(|i| {
                    status.is_none_or(|s| {
                        i.get("status")
                            .and_then(|v| v.as_s().ok())
                            .map(String::as_str)
                            == Some(s)
                    })
                })
                .count()
        };
        let _ = writeln!(
            out,
            "\npayments\n  charges approved {}, declined {}, refunds {}",
            count("charge", Some("APPROVED")),
            count("charge", Some("DECLINED")),
            count("refund", None)
        );
    }

    let mut notifications: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(watch)
            .max_number_of_messages(10)
            .send()
            .await
            .map_err(|e| DemoError(format!("{e:?}")))?
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        for message in batch {
            let kind = message
                .body()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .and_then(|j| j["kind"].as_str().map(str::to_owned))
                .unwrap_or_default();
            *notifications.entry(kind).or_default() += 1;
            if let Some(handle) = message.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(watch)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
    }
    let _ = writeln!(out, "\nnotifications sent\n  {notifications:?}");

    // The functions' own EMF lines, summed: what CloudWatch would chart.
    let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
    for json in lines.iter().filter_map(|line| line.json()) {
        for metric in json["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(name) = metric["Name"].as_str() else {
                continue;
            };
            let value = match &json[name] {
                Value::Array(values) => values.len() as f64,
                other => other.as_f64().unwrap_or_default(),
            };
            *metrics.entry(name.to_owned()).or_default() += value;
        }
    }
    let _ = writeln!(out, "\nmetrics (summed from the functions' EMF lines)");
    for (name, value) in &metrics {
        let _ = writeln!(out, "  {name:<24} {value}");
    }

    let _ = writeln!(out, "\ncold starts (init duration per process)");
    for line in lines {
        if let Some(json) = line.json()
            && json["type"] == "platform.report"
            && let Some(init) = json["record"]["metrics"]["initDurationMs"].as_f64()
        {
            let _ = writeln!(
                out,
                "  {:<22} init {init:>7.1} ms, first invocation {:>7.1} ms, peak memory {} MB",
                line.function,
                json["record"]["metrics"]["durationMs"]
                    .as_f64()
                    .unwrap_or_default(),
                json["record"]["metrics"]["maxMemoryUsedMB"]
            );
        }
    }

    let _ = writeln!(out, "\ndead-letter queues");
    let mut poison_found = false;
    let mut unexpected = 0;
    for (id, url) in host.stack.queues() {
        if !id.contains("DeadLetter") {
            continue;
        }
        let messages = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| DemoError(format!("{e:?}")))?
            .messages
            .unwrap_or_default();
        let _ = writeln!(out, "  {id:<42} {} message(s)", messages.len());
        for message in &messages {
            let attributes = message.message_attributes();
            let reason = attributes
                .and_then(|a| a.get("dead_letter_reason"))
                .and_then(|v| v.string_value())
                .unwrap_or("(no reason attribute)");
            let original = attributes
                .and_then(|a| a.get("original_message_id"))
                .and_then(|v| v.string_value())
                .unwrap_or_default();
            let _ = writeln!(out, "    - {original}: {reason}");
            if original == poison_id {
                poison_found = true;
            } else {
                unexpected += 1;
            }
        }
    }
    ok &= poison_found && unexpected == 0;
    let _ = writeln!(
        out,
        "\npoison message in a DLQ with its reason: {}; unexpected dead letters: {unexpected}",
        if poison_found { "yes" } else { "NO" }
    );
    let _ = writeln!(
        out,
        "\nresult: {}",
        if ok {
            "PASS: every order reached its expected state, nothing was lost"
        } else {
            "FAIL"
        }
    );
    println!("{out}");
    Ok(ok)
}
