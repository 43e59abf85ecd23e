//! AWS requests per order, per function: the happy path and every failure path.
//!
//! Locally each function signs with its own access key (its logical id), so the
//! emulator's request log says which function made which call. Each path runs alone on a
//! quiet pipeline: the counts are reset, one order (or message) goes in, and the counts
//! are read once every order is final and nothing has moved for a while.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::{BenchError, until_functions_still};
use crate::audit::Stores;
use emulator::RequestCounts;
use emulator::http_client::Http;
use lambda_host::Host;

/// How long the functions must stay still before a path's counts are read, and how long
/// a path may take.
const QUIET: Duration = Duration::from_secs(2);
const LIMIT: Duration = Duration::from_secs(60);

/// The SKUs the paths order: one stocked, one sold out.
pub const STOCKED: &str = "SKU-BENCH";
/// Never in stock: its orders are charged, then refunded.
pub const SOLD_OUT: &str = "SKU-BENCH-SOLD-OUT";

/// The one request made per cold start rather than per order (payment's API key).
pub const PER_COLD_START: &str = "secretsmanager.GetSecretValue";

/// One path's requests.
#[derive(Debug, Clone)]
pub struct PathRequests {
    /// The path's name.
    pub path: &'static str,
    /// What happens on it.
    pub story: &'static str,
    /// Requests per function, then per operation.
    pub counts: RequestCounts,
    /// DynamoDB write request units per function, sized by DynamoDB's rules (the
    /// emulator meters them: `local/emulator/moto_launcher.py`).
    pub write_units: BTreeMap<String, f64>,
}

impl PathRequests {
    /// Every function request on the path, except the once-per-cold-start secret fetch.
    pub fn total(&self) -> u64 {
        self.counts
            .values()
            .flat_map(|ops| ops.iter())
            .filter(|(op, _)| *op != PER_COLD_START)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every function's DynamoDB write request units on the path.
    pub fn total_write_units(&self) -> f64 {
        // From +0.0: a float sum of nothing is -0.0, which the page would print.
        self.write_units
            .values()
            .fold(0.0, |sum, units| sum + units)
    }
}

enum Step {
    /// Place an order with this payment token and SKU under this idempotency key.
    Order(&'static str, &'static str, &'static str),
    /// Read the first path's order back.
    Read,
    /// Post a body that fails validation.
    Invalid,
    /// Put one undecodable message on every consumer queue.
    Poison,
}

/// Runs every path on `host`, one after another, and returns their counts.
pub async fn count_paths(host: &Host, stores: &Stores) -> Result<Vec<PathRequests>, BenchError> {
    let paths = [
        (
            "happy",
            "placed, paid, reserved, confirmed; two notifications",
            Step::Order("tok_visa", STOCKED, "bench-key-1"),
        ),
        ("read back", "GET /orders/{id} of that order", Step::Read),
        (
            "replayed request",
            "the same POST again with the same Idempotency-Key: the stored answer",
            Step::Order("tok_visa", STOCKED, "bench-key-1"),
        ),
        (
            "payment declined",
            "placed, card declined, cancelled; two notifications",
            Step::Order("tok_decline", STOCKED, "bench-key-2"),
        ),
        (
            "out of stock",
            "placed, paid, no stock, refunded, cancelled; two notifications",
            Step::Order("tok_visa", SOLD_OUT, "bench-key-3"),
        ),
        (
            "invalid request",
            "a body that fails validation: 400 problem+json",
            Step::Invalid,
        ),
        (
            "poison message",
            "one undecodable message on each consumer queue: to its DLQ",
            Step::Poison,
        ),
    ];
    stores
        .seed_stock(&BTreeMap::from([
            (STOCKED.to_owned(), 1_000),
            (SOLD_OUT.to_owned(), 0),
        ]))
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    let http = Http::new();
    let functions: BTreeSet<String> = host.functions().map(|f| f.name().to_owned()).collect();
    let mut results = Vec::new();
    let mut first_order = String::new();
    for (path, story, step) in paths {
        until_functions_still(host, QUIET, LIMIT, || ()).await?;
        host.emulator
            .reset_request_counts()
            .await
            .map_err(BenchError::from)?;
        match step {
            Step::Order(token, sku, key) => {
                let body = json!({"customer_id": "cust-bench", "currency": "EUR",
                    "items": [{"sku": sku, "quantity": 1, "unit_price_minor": 1250}],
                    "payment_token": token});
                let answer = post(&http, host, &body, key).await?;
                if answer.status != 201 && answer.status != 200 {
                    return Err(BenchError(format!(
                        "{path}: {} {}",
                        answer.status, answer.body
                    )));
                }
                let answer: Value = serde_json::from_str(&answer.body).unwrap_or_default();
                let id = answer["order_id"].as_str().unwrap_or_default().to_owned();
                if first_order.is_empty() {
                    first_order.clone_from(&id);
                }
                let accepted = BTreeSet::from([id]);
                if !stores
                    .wait_until_quiet(&accepted, Duration::from_secs(60))
                    .await
                    .map_err(|e| BenchError(e.to_string()))?
                {
                    return Err(BenchError(format!("{path}: the order did not finish")));
                }
            }
            Step::Read => {
                let url = format!("{}/orders/{first_order}", host.api_url());
                let answer = http.send(Method::GET, &url, &[], None).await?;
                if answer.status != 200 {
                    return Err(BenchError(format!(
                        "{path}: {} {}",
                        answer.status, answer.body
                    )));
                }
            }
            Step::Invalid => {
                let answer = post(&http, host, &json!({"currency": "EUR"}), "bench-key-4").await?;
                if answer.status != 400 {
                    return Err(BenchError(format!(
                        "{path}: expected 400, got {}",
                        answer.status
                    )));
                }
            }
            Step::Poison => {
                let sqs = aws_sdk_sqs::Client::new(&host.sdk);
                for mapping in host.stack.queue_mappings() {
                    sqs.send_message()
                        .queue_url(&mapping.queue_url)
                        .message_body("{\"not\": \"an event\"")
                        .send()
                        .await
                        .map_err(|e| BenchError(format!("poison message: {e:?}")))?;
                }
            }
        }
        let (mut counts, ()) = until_functions_still(host, QUIET, LIMIT, || ()).await?;
        counts.retain(|caller, _| functions.contains(caller));
        let write_units = host
            .emulator
            .capacity_units()
            .await
            .map_err(BenchError)?
            .into_iter()
            .filter(|(caller, _)| functions.contains(caller))
            .filter_map(|(caller, units)| units.get("write").map(|w| (caller, *w)))
            .filter(|(_, units)| *units > 0.0)
            .collect();
        results.push(PathRequests {
            path,
            story,
            counts,
            write_units,
        });
    }
    Ok(results)
}

async fn post(
    http: &Http,
    host: &Host,
    body: &Value,
    key: &str,
) -> Result<emulator::http_client::Response, BenchError> {
    http.send(
        Method::POST,
        &format!("{}/orders", host.api_url()),
        &[
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ],
        Some(body.to_string()),
    )
    .await
    .map_err(BenchError::from)
}
