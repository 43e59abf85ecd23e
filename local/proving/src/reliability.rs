//! `make reliability`: the pipeline under load, duplicates, reordering, faults and hostile
//! input, each scenario on a fresh local host and ending with the [`audit`](crate::audit).
//!
//! A scenario places a mix of orders concurrently over HTTP, like many clients would:
//! happy ones, declined cards, orders for a SKU that runs out (charged, then refunded),
//! flaky cards (the provider times out once, then approves), and orders submitted twice at
//! once with one idempotency key; or, in the hot SKU scenario, all for one SKU stocked
//! for only part of them, under injected transaction conflicts. The client is a
//! well-behaved one: on a 409 (same key in progress), a 429, a 5xx or a dropped
//! connection it retries with the same key. While the orders flow, the scenario injects
//! its faults; then it waits for the pipeline to go quiet and audits the stores.
//! `docs/reliability.md` is written from the outcomes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use http::Method;
use serde_json::{Value, json};

use crate::audit::{Audit, AuditError, Check, Expected, Stores};
use crate::heartbeat::Heartbeat;
use emulator::http_client::Http;
use emulator::{DynamoDbFault, FaultClient};
use lambda_host::chaos::{Chaos, DeliveryChaos};
use lambda_host::logs::{LogLine, Logs, readable};
use lambda_host::queues::Redelivery;
use lambda_host::{Host, HostError, HostOptions};

/// A run could not be carried out (as opposed to: it ran and an invariant broke).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The host did not start.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The stores could not be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Something else went wrong.
    #[error("{0}")]
    Other(String),
}

/// The faults a scenario injects while its orders flow.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Every function's AWS requests answer 503 for this many seconds, once, when about a
    /// third of the orders are placed.
    pub outage_seconds: Option<f64>,
    /// The emulator process is frozen (SIGSTOP) for this many seconds, once, a few seconds
    /// after the outage: every request to it hangs, the host's own pollers' too, until
    /// it resumes (SIGCONT) with its state intact.
    pub freeze_seconds: Option<f64>,
    /// This share of every function's AWS requests is throttled for the first this many
    /// seconds of the run.
    pub throttle: Option<(f64, f64)>,
    /// How many function processes are killed (SIGKILL), one every half second from the
    /// start, going round the functions.
    pub kills: usize,
    /// How many hostile bodies (of each kind in [`crate::hostile`]) go to each consumer
    /// queue.
    pub hostile_rounds: usize,
    /// DynamoDB contention as AWS produces it and the serialising emulator never would:
    /// without it, the functions' handling of cancelled transactions never runs here.
    pub contention: Option<Contention>,
}

/// Shares of the functions' DynamoDB writes failed as contention does on AWS, for a
/// window from the start of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Contention {
    /// This share of `TransactWriteItems` is cancelled with `TransactionConflict`, as when
    /// another transaction holds one of its items.
    pub conflicts: f64,
    /// This share of `TransactWriteItems` (of those not already conflicted) is cancelled
    /// with `ThrottlingError`, as DynamoDB reports throttling inside a transaction.
    pub throttled: f64,
    /// This share of single-item writes is answered
    /// `ProvisionedThroughputExceededException`, which the SDK retries.
    pub write_throttled: f64,
    /// For this many seconds from the start; `None`: until the pipeline is quiet, so every
    /// order of the run meets it.
    pub seconds: Option<f64>,
}

impl Contention {
    /// How long a window of `None` seconds is asked for: longer than any run, and ended
    /// explicitly once the pipeline is quiet.
    const WHOLE_RUN_SECONDS: f64 = 3600.0;

    /// The faults to ask the emulator for, with their rates (zero rates left out).
    fn plans(&self) -> impl Iterator<Item = (DynamoDbFault, f64)> {
        [
            (DynamoDbFault::TransactionConflict, self.conflicts),
            (DynamoDbFault::TransactionThrottled, self.throttled),
            (DynamoDbFault::WriteThrottled, self.write_throttled),
        ]
        .into_iter()
        .filter(|(_, rate)| *rate > 0.0)
    }

    /// Starts the window on `emulator`.
    async fn start(&self, emulator: &FaultClient) -> Result<(), String> {
        let seconds = self.seconds.unwrap_or(Self::WHOLE_RUN_SECONDS);
        for (fault, rate) in self.plans() {
            emulator.fail_share(fault, rate, seconds).await?;
        }
        Ok(())
    }

    /// Ends the window on `emulator` (a rate of 0), so nothing after the run is failed.
    async fn end(&self, emulator: &FaultClient) -> Result<(), String> {
        for (fault, _) in self.plans() {
            emulator.fail_share(fault, 0.0, 0.0).await?;
        }
        Ok(())
    }
}

/// What a scenario's orders buy: the stock is seeded to match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mix {
    /// The runs' usual mix: happy, declined, out of stock, flaky card, same key twice.
    #[default]
    Mixed,
    /// Every order buys one unit of one SKU, stocked for only part of them: a sale, where
    /// every reservation updates the same item and the rest run out of stock.
    HotSku,
}

impl Mix {
    /// The one SKU of [`Mix::HotSku`].
    pub const HOT_SKU: &'static str = "SKU-HOT";

    /// The stock to seed for `orders` orders of this mix.
    pub fn stock(self, orders: usize) -> BTreeMap<String, i64> {
        match self {
            Mix::Mixed => stock_for(orders),
            Mix::HotSku => BTreeMap::from([(Self::HOT_SKU.to_owned(), hot_stock(orders))]),
        }
    }

    /// Order `i` of this mix and how many times it is submitted at once.
    fn order(self, i: usize) -> (Value, usize) {
        match self {
            Mix::Mixed => order(i),
            Mix::HotSku => (
                json!({"customer_id": format!("cust-{:04}", i % 1000), "currency": "EUR",
                    "items": [{"sku": Self::HOT_SKU, "quantity": 1, "unit_price_minor": 1250}],
                    "payment_token": "tok_visa"}),
                1,
            ),
        }
    }
}

/// Units of [`Mix::HOT_SKU`] for `orders` one-unit orders: three fifths of them, so the
/// other two fifths are charged, find it sold out and are refunded.
pub fn hot_stock(orders: usize) -> i64 {
    i64::try_from(orders * 3 / 5).unwrap_or(i64::MAX).max(1)
}

/// One scenario: how many orders, how they are delivered, what breaks.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// A short name.
    pub name: &'static str,
    /// How many orders (keys) are placed.
    pub orders: usize,
    /// How many requests are in flight at once.
    pub concurrency: usize,
    /// Duplicates and reordering.
    pub delivery: DeliveryChaos,
    /// Faults.
    pub faults: Faults,
    /// What the orders buy.
    pub mix: Mix,
}

impl Scenario {
    /// The load, described for the report.
    pub fn load(&self) -> String {
        let mut load = match self.mix {
            Mix::Mixed => format!(
                "{} orders, {} in flight (mixed: happy, declined, out of stock, flaky card, same key twice at once)",
                self.orders, self.concurrency
            ),
            Mix::HotSku => format!(
                "{} orders, {} in flight, all for one unit of one SKU stocked for {} of them",
                self.orders,
                self.concurrency,
                hot_stock(self.orders)
            ),
        };
        if self.delivery.max_deliveries > 1 {
            let _ = write!(
                load,
                "; every message delivered 2–{} times",
                self.delivery.max_deliveries
            );
        }
        if self.delivery.shuffle {
            load.push_str("; batches shuffled");
        }
        load
    }

    /// The faults, described for the report.
    pub fn faults(&self) -> String {
        let f = &self.faults;
        let mut parts = Vec::new();
        if let Some(seconds) = f.outage_seconds {
            parts.push(format!("AWS unavailable (503) for {seconds} s mid-run"));
        }
        if let Some(seconds) = f.freeze_seconds {
            parts.push(format!(
                "emulator process stopped (SIGSTOP) for {seconds} s, then resumed"
            ));
        }
        if let Some((rate, seconds)) = f.throttle {
            parts.push(format!(
                "{:.0} % of AWS requests throttled for {seconds} s",
                rate * 100.0
            ));
        }
        if let Some(c) = f.contention {
            let window = c
                .seconds
                .map_or_else(|| "the whole run".to_owned(), |s| format!("{s} s"));
            let mut shares = Vec::new();
            if c.conflicts > 0.0 {
                shares.push(format!("{:.0} % TransactionConflict", c.conflicts * 100.0));
            }
            if c.throttled > 0.0 {
                shares.push(format!("{:.0} % ThrottlingError", c.throttled * 100.0));
            }
            if !shares.is_empty() {
                parts.push(format!(
                    "DynamoDB transactions cancelled ({}) for {window}",
                    shares.join(", ")
                ));
            }
            if c.write_throttled > 0.0 {
                parts.push(format!(
                    "{:.0} % of DynamoDB single writes throttled (ProvisionedThroughputExceeded) for {window}",
                    c.write_throttled * 100.0
                ));
            }
        }
        if f.kills > 0 {
            parts.push(format!("{} function processes killed", f.kills));
        }
        if f.hostile_rounds > 0 {
            parts.push(format!(
                "{} hostile bodies per consumer queue",
                f.hostile_rounds * crate::hostile::bodies().len()
            ));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }
}

/// What a scenario measured and found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// Orders accepted (201), one per key.
    pub accepted: usize,
    /// POSTs answered with a replay (`Idempotent-Replayed: true`).
    pub replayed: usize,
    /// POSTs retried after a 409, 429, 5xx or a dropped connection.
    pub retried: usize,
    /// Duplicate deliveries made.
    pub duplicates: usize,
    /// Requests failed by the injected faults, by kind.
    pub injected: BTreeMap<String, u64>,
    /// Processes killed.
    pub killed: usize,
    /// How long the emulator process was really stopped, if it was.
    pub frozen: Option<Duration>,
    /// Accepted orders per second, from the first acceptance to the last final state.
    pub orders_per_second: f64,
    /// Median and 99th percentile time from acceptance to final state, in ms.
    pub p50_ms: i64,
    /// See `p50_ms`.
    pub p99_ms: i64,
    /// Invocations per function and their mean duration in ms (from the host's
    /// `platform.report` lines): where the time went.
    pub invocations: BTreeMap<String, (usize, f64)>,
    /// Wall time of the whole scenario, including start-up and the audit.
    pub wall: Duration,
    /// The audit.
    pub audit: Audit,
    /// Every log line about the orders the audit found unfinished (and about the events
    /// those lines name), readable: where to start when an order got stuck.
    pub unfinished_trace: Vec<String>,
}

/// The scenarios of `make reliability`, at `scale` (1.0 = the full run: 10 000 orders
/// in the load scenario). `make test` runs them small.
pub fn scenarios(scale: f64) -> Vec<Scenario> {
    let n = |orders: f64| ((orders * scale).round() as usize).max(20);
    vec![
        Scenario {
            name: "load",
            orders: n(10_000.0),
            concurrency: 32,
            delivery: DeliveryChaos::default(),
            faults: Faults::default(),
            mix: Mix::Mixed,
        },
        Scenario {
            name: "duplicates and reordering",
            orders: n(1_000.0),
            concurrency: 16,
            delivery: DeliveryChaos {
                max_deliveries: 3,
                shuffle: true,
                seed: 42,
            },
            faults: Faults::default(),
            mix: Mix::Mixed,
        },
        Scenario {
            name: "faults",
            orders: n(1_000.0),
            concurrency: 16,
            delivery: DeliveryChaos::default(),
            faults: Faults {
                outage_seconds: Some(4.0),
                freeze_seconds: Some(4.0),
                throttle: Some((0.2, 8.0)),
                kills: 6,
                hostile_rounds: 0,
                // About 8 % of transactions and 5 % of single writes, in the same window as
                // the throttling: what a busy table sees on AWS.
                contention: Some(Contention {
                    conflicts: 0.04,
                    throttled: 0.04,
                    write_throttled: 0.05,
                    seconds: Some(8.0),
                }),
            },
            mix: Mix::Mixed,
        },
        Scenario {
            name: "hostile input",
            orders: n(200.0),
            concurrency: 16,
            delivery: DeliveryChaos::default(),
            faults: Faults {
                hostile_rounds: 3,
                ..Faults::default()
            },
            mix: Mix::Mixed,
        },
        Scenario {
            name: "hot SKU",
            // Fewer than 40 would leave too few losers to contend.
            orders: ((500.0 * scale).round() as usize).max(40),
            concurrency: 64,
            delivery: DeliveryChaos::default(),
            faults: Faults {
                // Far above a normal table's: every reservation updates the one item.
                contention: Some(Contention {
                    conflicts: 0.3,
                    seconds: None,
                    ..Contention::default()
                }),
                ..Faults::default()
            },
            mix: Mix::HotSku,
        },
    ]
}

/// The SKUs the runs order; `SKU-RARE` is stocked for about half the orders asking for it.
pub(crate) fn stock_for(orders: usize) -> BTreeMap<String, i64> {
    let plenty = i64::try_from(orders).unwrap_or(i64::MAX / 8) * 4;
    let mut stock: BTreeMap<String, i64> = ["SKU-MUG", "SKU-TEE", "SKU-CAP", "SKU-PEN"]
        .into_iter()
        .map(|sku| (sku.to_owned(), plenty))
        .collect();
    stock.insert(
        "SKU-RARE".into(),
        i64::try_from(orders / 20).unwrap_or_default().max(1),
    );
    stock
}

/// Order `i` of a run and how many times it is submitted at once.
fn order(i: usize) -> (Value, usize) {
    let skus = ["SKU-MUG", "SKU-TEE", "SKU-CAP", "SKU-PEN"];
    let line = |sku: &str, quantity: usize| json!({"sku": sku, "quantity": quantity, "unit_price_minor": 1250});
    let happy = vec![line(skus[i % 4], 1 + i % 3), line(skus[(i + 1) % 4], 1)];
    let (items, token, submissions) = match i % 20 {
        13 | 14 => (happy, "tok_decline", 1),
        15 | 16 => (vec![line("SKU-RARE", 1)], "tok_visa", 1),
        17 => (happy, "tok_flaky_1", 1),
        18 | 19 => (happy, "tok_visa", 2),
        _ => (happy, "tok_visa", 1),
    };
    (
        json!({"customer_id": format!("cust-{:04}", i % 1000), "currency": "EUR",
            "items": items, "payment_token": token}),
        submissions,
    )
}

/// What placing one order (one key, one or more concurrent submissions) came to.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    /// The order ids the submissions were answered with (one, if all is well).
    pub(crate) order_ids: BTreeSet<String>,
    pub(crate) replayed: usize,
    pub(crate) retried: usize,
    /// Answers that were neither success nor retryable.
    pub(crate) refused: Vec<String>,
}

/// Submits one order with `key` until it is accepted (or refused, or `deadline`).
async fn submit(http: &Http, url: &str, key: &str, body: &str, deadline: Instant) -> Placed {
    let mut placed = Placed::default();
    let mut backoff = Duration::from_millis(100);
    loop {
        let answer = http
            .send(
                Method::POST,
                url,
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                Some(body.to_owned()),
            )
            .await;
        match answer {
            Ok(response) if response.status == 201 || response.status == 200 => {
                let json: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
                if let Some(id) = json["order_id"].as_str() {
                    placed.order_ids.insert(id.to_owned());
                }
                placed.replayed +=
                    usize::from(response.headers.contains_key("idempotent-replayed"));
                return placed;
            }
            Ok(response) if !matches!(response.status, 409 | 429 | 500..=599) => {
                placed
                    .refused
                    .push(format!("{} {}", response.status, response.body));
                return placed;
            }
            _ if Instant::now() >= deadline => {
                placed.refused.push("no answer before the deadline".into());
                return placed;
            }
            _ => {
                placed.retried += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Places orders `0..count` of the runs' mix over HTTP on the API at `api_url`,
/// `concurrency` at a time, each under its own idempotency key (and submitted twice at
/// once where the mix says so), like many well-behaved clients would.
pub(crate) async fn place(api_url: &str, count: usize, concurrency: usize) -> Vec<Placed> {
    place_mix(api_url, Mix::Mixed, count, concurrency).await
}

/// [`place`], for orders `0..count` of `mix`.
async fn place_mix(api_url: &str, mix: Mix, count: usize, concurrency: usize) -> Vec<Placed> {
    let http = Http::new();
    let url = format!("{api_url}/orders");
    let deadline = Instant::now() + Duration::from_secs(600);
    futures::stream::iter(0..count)
        .map(|i| {
            let (body, submissions) = mix.order(i);
            let body = body.to_string();
            let key = uuid::Uuid::new_v4().to_string();
            let (http, url) = (http.clone(), url.clone());
            async move {
                let attempts = (0..submissions).map(|_| submit(&http, &url, &key, &body, deadline));
                let mut all = Placed::default();
                for one in futures::future::join_all(attempts).await {
                    all.order_ids.extend(one.order_ids);
                    all.replayed += one.replayed;
                    all.retried += one.retried;
                    all.refused.extend(one.refused);
                }
                all
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// Runs one scenario on a fresh host built from `options` and audits it.
pub async fn run(scenario: &Scenario, options: &HostOptions) -> Result<Outcome, RunError> {
    let started = Instant::now();
    let chaos = Arc::new(Chaos::new(scenario.delivery));
    let logs = Logs::default();
    let faulty = scenario.faults.outage_seconds.is_some()
        || scenario.faults.freeze_seconds.is_some()
        || scenario.faults.throttle.is_some()
        || scenario.faults.contention.is_some()
        || scenario.faults.kills > 0;
    let host = Host::start(
        HostOptions {
            api_port: 0,
            chaos: chaos.clone(),
            // A message's five receives must span longer than a claim can be held (the
            // function's 10 s timeout plus a second), as the 60 s visibility timeout
            // makes them on AWS: 3 s between tries spans 12 s. With 1 s, a message whose
            // claim a slow invocation still held used up its receives under load and
            // reached the DLQ unprocessed. Under faults it also gives each outage time
            // to pass.
            redelivery: Redelivery::After(Duration::from_secs(3)),
            dynamodb_apart: true,
            ..options.clone()
        },
        logs.clone(),
    )
    .await?;
    let stores = Arc::new(Stores::watch(&host.sdk, &host.stack).await?);
    let stock = scenario.mix.stock(scenario.orders);
    stores.seed_stock(&stock).await?;

    let faults = tokio::spawn(inject(
        host.emulator.faults(),
        host.emulator.pids(),
        scenario.faults,
        host.functions().cloned().collect(),
    ));
    let dead_letters = send_hostile(&host, scenario.faults.hostile_rounds).await?;
    // Keep the notification watch queue short while the orders flow.
    let collector = {
        let stores = stores.clone();
        tokio::spawn(async move {
            loop {
                let _ = stores.collect_notifications().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let heartbeat = Heartbeat::print(scenario.name, stores.clone(), scenario.orders);
    let placed = place_mix(
        &host.api_url(),
        scenario.mix,
        scenario.orders,
        scenario.concurrency,
    )
    .await;

    let accepted: BTreeSet<String> = placed.iter().flat_map(|p| p.order_ids.clone()).collect();
    let Injected { killed, frozen } = faults
        .await
        .map_err(|e| RunError::Other(format!("fault injection: {e}")))?;
    let limit = Duration::from_secs(120 + u64::try_from(scenario.orders / 20).unwrap_or(0));
    stores.wait_until_quiet(&accepted, limit).await?;
    drop(heartbeat);
    collector.abort();
    if let Some(contention) = scenario.faults.contention {
        contention
            .end(&host.emulator.faults())
            .await
            .map_err(RunError::Other)?;
    }
    let expected = Expected {
        accepted: accepted.clone(),
        initial_stock: stock,
        dead_letters,
        faults_injected: faulty,
    };
    let mut audit = stores.audit(&expected).await?;

    // What only the client can see: one order per key, and no valid order refused.
    let split: Vec<String> = placed
        .iter()
        .filter(|p| p.order_ids.len() > 1)
        .map(|p| format!("{:?}", p.order_ids))
        .collect();
    let refused: Vec<String> = placed.iter().flat_map(|p| p.refused.clone()).collect();
    audit.checks.insert(
        0,
        Check {
            invariant: "every valid order is accepted, once per idempotency key",
            holds: split.is_empty() && refused.is_empty() && accepted.len() == scenario.orders,
            detail: format!(
                "{} keys, {} orders; keys with two orders: {}; refused: {}",
                scenario.orders,
                accepted.len(),
                split.len(),
                refused.first().map(String::as_str).unwrap_or("none")
            ),
        },
    );

    let percentile = |p: f64| {
        let times = &audit.time_to_final_ms;
        if times.is_empty() {
            return 0;
        }
        let index = ((times.len() - 1) as f64 * p).round() as usize;
        times[index.min(times.len() - 1)]
    };
    let (p50_ms, p99_ms) = (percentile(0.5), percentile(0.99));
    let busy_ms = audit.busy_ms.max(1);
    let injected = host
        .emulator
        .faults()
        .injected()
        .await
        .map_err(RunError::Other)?;
    Ok(Outcome {
        accepted: accepted.len(),
        replayed: placed.iter().map(|p| p.replayed).sum(),
        retried: placed.iter().map(|p| p.retried).sum(),
        duplicates: chaos.copies_sent(),
        injected,
        killed,
        frozen,
        orders_per_second: accepted.len() as f64 * 1000.0 / busy_ms as f64,
        p50_ms,
        p99_ms,
        invocations: invocations(&logs),
        wall: started.elapsed(),
        unfinished_trace: trace(&logs, &audit.unfinished),
        audit,
        scenario: scenario.clone(),
    })
}

/// The log lines that mention any of `order_ids`, or any event id or message id those
/// lines name, in the order the host received them. Empty when `order_ids` is.
fn trace(logs: &Logs, order_ids: &[String]) -> Vec<String> {
    if order_ids.is_empty() {
        return Vec::new();
    }
    let lines = logs.lines();
    let mentions = |line: &LogLine, terms: &BTreeSet<String>| {
        terms.iter().any(|term| line.text.contains(term.as_str()))
    };
    let mut terms: BTreeSet<String> = order_ids.iter().cloned().collect();
    for line in &lines {
        if !mentions(line, &terms) {
            continue;
        }
        let Some(json) = line.json() else { continue };
        for field in ["event_id", "message_id"] {
            for value in [&json[field], &json["span"][field]] {
                if let Some(id) = value.as_str().filter(|id| !id.is_empty()) {
                    terms.insert(id.to_owned());
                }
            }
        }
    }
    lines
        .iter()
        .filter(|line| mentions(line, &terms))
        .map(|line| {
            let at = chrono::DateTime::<chrono::Utc>::from(line.at).format("%H:%M:%S%.3f");
            format!("{at} {}", readable(line, false))
        })
        .collect()
}

/// Invocations per function and their mean duration, from the `platform.report` lines.
fn invocations(logs: &Logs) -> BTreeMap<String, (usize, f64)> {
    let mut totals: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for line in logs.lines() {
        let Some(json) = line.json() else { continue };
        if json["type"] == "platform.report" {
            let entry = totals.entry(line.function.clone()).or_default();
            entry.0 += 1;
            entry.1 += json["record"]["metrics"]["durationMs"]
                .as_f64()
                .unwrap_or_default();
        }
    }
    totals
        .into_iter()
        .map(|(function, (count, total))| (function, (count, total / count.max(1) as f64)))
        .collect()
}

/// Sends `rounds` of every hostile body to every consumer queue; returns how many.
async fn send_hostile(host: &Host, rounds: usize) -> Result<usize, RunError> {
    if rounds == 0 {
        return Ok(0);
    }
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let mut sent = 0;
    for mapping in host.stack.queue_mappings() {
        for _ in 0..rounds {
            for hostile in crate::hostile::bodies() {
                sqs.send_message()
                    .queue_url(&mapping.queue_url)
                    .message_body(hostile.body)
                    .send()
                    .await
                    .map_err(|e| RunError::Other(format!("sending a hostile body: {e:?}")))?;
                sent += 1;
            }
        }
    }
    Ok(sent)
}

/// What the fault injection did.
#[derive(Debug, Default)]
struct Injected {
    killed: usize,
    frozen: Option<Duration>,
}

/// Injects the scenario's faults on schedule, every half second: throttling and
/// contention from the start, one process killed per tick from the start, the outage at
/// 3 s, the freeze at 6 s.
async fn inject(
    emulator: FaultClient,
    emulator_pids: Vec<u32>,
    faults: Faults,
    functions: Vec<lambda_host::runtime::FunctionHost>,
) -> Injected {
    if let Some((rate, seconds)) = faults.throttle {
        let _ = emulator.throttle(rate, seconds).await;
    }
    if let Some(contention) = faults.contention {
        let _ = contention.start(&emulator).await;
    }
    let mut done = Injected::default();
    let mut outage = faults.outage_seconds;
    // Without a process id (the emulator already gone) there is nothing to stop.
    let mut freeze = faults.freeze_seconds.filter(|_| !emulator_pids.is_empty());
    let mut round = 0;
    while done.killed < faults.kills || outage.is_some() || freeze.is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        round += 1;
        if round == 6
            && let Some(seconds) = outage.take()
        {
            let _ = emulator.make_unavailable(seconds).await;
        }
        if round == 12
            && let Some(seconds) = freeze.take()
        {
            let started = Instant::now();
            if let Ok(frozen) = emulator::Frozen::freeze(&emulator_pids) {
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                drop(frozen);
                done.frozen = Some(started.elapsed());
            }
        }
        if done.killed < faults.kills && !functions.is_empty() {
            let function = &functions[round % functions.len()];
            if function.kill_one() {
                done.killed += 1;
            }
        }
        if round > 600 {
            break;
        }
    }
    done
}

/// An estimate of what the full run (scale 1.0, the default: 10 000 orders in the load
/// scenario) takes: each scenario's wall time scaled by its orders. Empty when this run
/// was the full one. The emulator sets the pace: moto serves every AWS request from two
/// Python processes, at most a core each, whatever the functions could do.
fn full_scale(outcomes: &[Outcome]) -> String {
    let full = scenarios(1.0);
    let mut orders = 0;
    let mut seconds = 0.0;
    for o in outcomes {
        let Some(scenario) = full.iter().find(|s| s.name == o.scenario.name) else {
            continue;
        };
        if scenario.orders == o.scenario.orders {
            return String::new();
        }
        orders += scenario.orders;
        seconds += o.wall.as_secs_f64() * scenario.orders as f64 / o.scenario.orders as f64;
    }
    if orders == 0 {
        return String::new();
    }
    format!(
        "\nAt scale 1.0 (plain `make reliability`) the scenarios place {orders} orders; \
         scaling each run above by its orders gives about {:.0} minutes on this machine, \
         before the fuzzing. That is an estimate: run the full scale to measure it. The \
         emulator sets the pace, not the functions: moto serves every AWS \
         request from two Python processes (DynamoDB in one, the other services in the \
         other), one core each at most on two cores shared with the functions, and every \
         order takes a dozen or more requests (docs/performance.md counts them). On AWS \
         the same code scales out with the queues.\n",
        seconds / 60.0
    )
}

/// One cargo fuzz target's run, from the log `make fuzz` leaves in `target/fuzz/`.
#[derive(Debug, Clone)]
pub struct FuzzTarget {
    /// The target's name.
    pub name: String,
    /// libFuzzer's closing line ("Done 1234567 runs in 61 second(s)"), or what went wrong.
    pub result: String,
    /// Whether it ran to its time limit without a crash.
    pub passed: bool,
    /// Whether it ran at all (`make fuzz` before `local reliability`).
    pub ran: bool,
}

/// The cargo fuzz targets' results, read from `target/fuzz/<target>.log`.
pub fn cargo_fuzz_results(targets: &[&str]) -> Vec<FuzzTarget> {
    let dir = emulator::workspace_root().join("target/fuzz");
    targets
        .iter()
        .map(|name| {
            let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            let done = log.lines().rev().find(|line| line.starts_with("Done "));
            let crashed = log.contains("SUMMARY:") || log.contains("panicked");
            FuzzTarget {
                name: (*name).to_owned(),
                result: match (done, crashed) {
                    (_, true) => "crashed: see shared/fuzz/artifacts".to_owned(),
                    (Some(done), false) => done.to_owned(),
                    (None, false) => "did not run (make fuzz)".to_owned(),
                },
                passed: done.is_some() && !crashed,
                ran: !log.is_empty(),
            }
        })
        .collect()
}

/// `docs/reliability.md`, from the outcomes.
pub fn report(
    outcomes: &[Outcome],
    api: Option<&ApiFuzz>,
    fuzz: &[FuzzTarget],
    machine: &str,
) -> String {
    let mut doc = String::from(
        "# Reliability\n\n\
         Generated by `make reliability` (`local/proving/src/reliability.rs`): do not edit by hand. \
         Each scenario runs on a fresh local host (the real function binaries, the moto \
         emulator), places its orders concurrently over HTTP, injects its faults, waits \
         until the pipeline is quiet and then audits the stores (`local/proving/src/audit.rs`).\n\n",
    );
    let _ = writeln!(doc, "Machine: {machine}.\n");
    doc.push_str(
        "| scenario | load | faults injected | outcome | audit |\n|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let _ = writeln!(
            doc,
            "| {} | {} | {} | {} orders accepted ({} replays, {} client retries, {} duplicate deliveries{}{}{}); {:.1} orders/s; time to final state p50 {} ms, p99 {} ms; {:?}; run took {:.0} s | {} |",
            o.scenario.name,
            o.scenario.load(),
            o.scenario.faults(),
            o.accepted,
            o.replayed,
            o.retried,
            o.duplicates,
            if o.injected.values().any(|n| *n > 0) {
                format!(", AWS requests failed by faults: {:?}", o.injected)
            } else {
                String::new()
            },
            if o.killed > 0 {
                format!(", {} processes killed", o.killed)
            } else {
                String::new()
            },
            o.frozen.map_or_else(String::new, |d| format!(
                ", emulator stopped {:.1} s",
                d.as_secs_f64()
            )),
            o.orders_per_second,
            o.p50_ms,
            o.p99_ms,
            o.audit.by_state,
            o.wall.as_secs_f64(),
            if o.audit.passed() {
                "**passed**".to_owned()
            } else {
                format!("**FAILED**: {}", o.audit.failures().join("; "))
            }
        );
    }
    if let Some(api) = api {
        let _ = writeln!(
            doc,
            "| API fuzzing (schemathesis) | {} generated requests from docs/openapi.yaml, valid and invalid | none | {}; {:.0} s | {} |",
            api.requests,
            api.summary,
            api.wall.as_secs_f64(),
            if api.passed {
                "**passed**: every answer documented (status, content type, schema), no 5xx"
            } else {
                "**FAILED**"
            }
        );
    }
    for target in fuzz.iter().filter(|target| target.ran) {
        let _ = writeln!(
            doc,
            "| cargo fuzz `{}` | libFuzzer inputs for {} | none | {} | {} |",
            target.name,
            if target.name == "order_request" {
                "request parsing and validation"
            } else {
                "event-envelope decoding"
            },
            target.result,
            if target.passed {
                "**passed**: no panic"
            } else {
                "**FAILED**"
            }
        );
    }
    doc.push_str(&full_scale(outcomes));
    doc.push_str("\n## The invariants, per scenario\n");
    for o in outcomes {
        let _ = writeln!(doc, "\n### {}\n", o.scenario.name);
        for check in &o.audit.checks {
            let _ = writeln!(
                doc,
                "- {} {}: {}",
                if check.holds { "✓" } else { "✗" },
                check.invariant,
                check.detail
            );
        }
    }
    doc
}

/// What the API fuzzer found.
#[derive(Debug, Clone)]
pub struct ApiFuzz {
    /// Whether every generated request got a documented answer (status, content type,
    /// schema) and none a 5xx.
    pub passed: bool,
    /// Generated requests, per the fuzzer's own count.
    pub requests: u64,
    /// The fuzzer's closing summary, for the report.
    pub summary: String,
    /// Wall time.
    pub wall: Duration,
}

/// Fuzzes the API from `docs/openapi.yaml` with schemathesis (`fuzzer` is its `st`
/// executable): positive and negative examples of every operation, each answer checked
/// against the document: no 5xx, a documented status, content type and body.
pub async fn fuzz_api(
    fuzzer: &str,
    examples: u32,
    options: &HostOptions,
) -> Result<ApiFuzz, RunError> {
    let started = Instant::now();
    let host = Host::start(
        HostOptions {
            api_port: 0,
            ..options.clone()
        },
        Logs::default(),
    )
    .await?;
    // schemathesis keeps a cache of what it found in `.schemathesis/` under its working
    // directory: that belongs in target/, not at the top of the repository.
    let root = emulator::workspace_root();
    let workdir = root.join("target/schemathesis");
    std::fs::create_dir_all(&workdir)
        .map_err(|e| RunError::Other(format!("creating {}: {e}", workdir.display())))?;
    // A relative path (the Makefile passes .venv/…) means relative to where we started,
    // not to the fuzzer's working directory; a bare name is looked up on PATH.
    let program = if fuzzer.contains('/') {
        std::path::absolute(fuzzer)
            .map_err(|e| RunError::Other(format!("cannot resolve {fuzzer}: {e}")))?
    } else {
        std::path::PathBuf::from(fuzzer)
    };
    let output = tokio::process::Command::new(&program)
        .current_dir(&workdir)
        .arg("run")
        .arg(root.join("docs/openapi.yaml"))
        .args(["--url", &host.api_url()])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--mode", "all", "--seed", "1", "--max-examples"])
        .arg(examples.to_string())
        .env("NO_COLOR", "1")
        .output()
        .await
        .map_err(|e| RunError::Other(format!("cannot run {fuzzer}: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The summary says "Test cases:" then "  2817 generated, 2817 passed".
    let summary = stdout
        .lines()
        .find(|line| line.contains(" generated,"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let requests = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    Ok(ApiFuzz {
        passed: output.status.success(),
        requests,
        summary: if output.status.success() {
            summary
        } else {
            stdout.into_owned()
        },
        wall: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stuck order's trace follows it from the API through the events it caused, by
    /// the event ids its own lines name, and leaves out every other order.
    #[test]
    fn an_unfinished_orders_trace_follows_its_events_and_nothing_else() {
        let logs = Logs::default();
        let line = |function: &str, value: Value| logs.push(function, value.to_string());
        line(
            "CreateOrderFunction",
            json!({"level": "INFO", "message": "order placed", "order_id": "ord-stuck", "event_id": "evt-1"}),
        );
        line(
            "CreateOrderFunction",
            json!({"level": "INFO", "message": "order placed", "order_id": "ord-fine", "event_id": "evt-2"}),
        );
        line(
            "EventRelayFunction",
            json!({"level": "ERROR", "message": "relaying stream record failed", "event_id": "evt-1"}),
        );
        line(
            "PaymentFunction",
            json!({"level": "INFO", "message": "payment succeeded", "span": {"event_id": "evt-2"}}),
        );

        let trace = trace(&logs, &["ord-stuck".to_owned()]);

        assert_eq!(trace.len(), 2, "{trace:#?}");
        assert!(trace[0].contains("order placed"), "{}", trace[0]);
        assert!(
            trace[1].contains("relaying stream record failed"),
            "{}",
            trace[1]
        );
        assert!(super::trace(&logs, &[]).is_empty());
    }
}
