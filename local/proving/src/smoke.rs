//! `make smoke STACK=<name>`: one command that says whether a deployed stack works.
//!
//! It places the orders of `events/demo/scenarios.json` through the stack's API (a happy
//! order, a declined card, an out-of-stock order, one key sent twice), each request
//! signed with SigV4 from the caller's credentials as the IAM-authenticated API requires,
//! waits for every order's final state, then checks that every dead-letter queue is
//! empty and that no alarm is in `ALARM`. It prints a short report; the command exits
//! non-zero on any failure.
//!
//! The same client runs in `make test` against the local cloud, where only the
//! addresses differ ([`Deployed::local`] instead of [`Deployed::describe`]), and
//! `make demo` places its orders with it too.
//!
//! Before the orders, it sets the stock of `events/demo/stock.json`'s SKUs (as the demo
//! does), so the out-of-stock order is out of stock on every run: on AWS that is a
//! `PutItem` on the inventory table with the caller's credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::Method;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::Value;

use emulator::http_client::{Http, Response};
use lambda_host::Host;

/// The smoke test could not run (as opposed to: it ran and found a problem, which its
/// [`Report`] says).
#[derive(Debug, thiserror::Error)]
#[error("smoke: {0}")]
pub struct SmokeError(String);

fn fail(context: &str) -> impl FnOnce(String) -> SmokeError + '_ {
    move |e| SmokeError(format!("{context}: {e}"))
}

/// An AWS call failed: what it was for, and the SDK's description of the error (its
/// service code and message).
fn failed<E, R>(context: impl Into<String>) -> impl FnOnce(SdkError<E, R>) -> SmokeError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    let context = context.into();
    move |e| SmokeError(format!("{context}: {}", aws_adapters::sdk::describe(&e)))
}

/// The order states no event moves on from.
pub const FINAL: [&str; 3] = ["CONFIRMED", "PAYMENT_FAILED", "CANCELLED"];

/// A stack as CloudFormation describes it: what the smoke test needs to find its API,
/// its tables, its dead-letter queues and its alarms.
#[derive(Debug, Clone, Default)]
pub struct Deployed {
    /// The stack's outputs, by key (`ApiUrl`, ...).
    pub outputs: BTreeMap<String, String>,
    /// Its resources: logical id -> (resource type, physical id). A queue's physical id is
    /// its URL, a table's its name, an alarm's its name.
    pub resources: BTreeMap<String, (String, String)>,
}

impl Deployed {
    /// A deployed stack, read with the caller's credentials (`DescribeStacks` for the
    /// outputs, `ListStackResources` for the resources).
    pub async fn describe(sdk: &SdkConfig, stack: &str) -> Result<Self, SmokeError> {
        let cloudformation = aws_sdk_cloudformation::Client::new(sdk);
        let described = cloudformation
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .map_err(failed(format!("stack {stack}")))?;
        let outputs = described
            .stacks()
            .iter()
            .flat_map(|s| s.outputs())
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        let mut resources = BTreeMap::new();
        let mut pages = cloudformation
            .list_stack_resources()
            .stack_name(stack)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(failed(format!("resources of {stack}")))?;
            for summary in page.stack_resource_summaries() {
                if let (Some(logical), Some(physical)) = (
                    summary.logical_resource_id(),
                    summary.physical_resource_id(),
                ) {
                    let kind = summary.resource_type().unwrap_or_default();
                    resources.insert(logical.to_owned(), (kind.to_owned(), physical.to_owned()));
                }
            }
        }
        Ok(Self { outputs, resources })
    }

    /// The same description of the local cloud: its API's address, and its tables and
    /// queues as provisioned. The local cloud has no CloudWatch alarms, so there are
    /// none to check.
    pub fn local(host: &Host) -> Self {
        let stack = &host.stack;
        let mut resources = BTreeMap::new();
        for (id, _) in stack.template().of_kind("AWS::DynamoDB::Table") {
            if let Ok(name) = stack.table_name(id) {
                resources.insert(
                    id.to_owned(),
                    ("AWS::DynamoDB::Table".to_owned(), name.to_owned()),
                );
            }
        }
        for (id, url) in stack.queues() {
            resources.insert(id, ("AWS::SQS::Queue".to_owned(), url));
        }
        Self {
            outputs: BTreeMap::from([("ApiUrl".to_owned(), host.api_url())]),
            resources,
        }
    }

    /// A resource's physical id.
    pub fn physical(&self, logical: &str) -> Result<&str, SmokeError> {
        self.resources
            .get(logical)
            .map(|(_, physical)| physical.as_str())
            .ok_or_else(|| SmokeError(format!("the stack has no resource {logical}")))
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.resources
            .iter()
            .filter(move |(_, (k, _))| k == kind)
            .map(|(id, (_, physical))| (id.as_str(), physical.as_str()))
    }

    /// Every dead-letter queue, as (logical id, URL): the template names each one
    /// `…DeadLetterQueue`.
    pub fn dead_letter_queues(&self) -> Vec<(&str, &str)> {
        self.of_type("AWS::SQS::Queue")
            .filter(|(id, _)| id.ends_with("DeadLetterQueue"))
            .collect()
    }

    /// Every alarm's name.
    pub fn alarms(&self) -> Vec<&str> {
        self.of_type("AWS::CloudWatch::Alarm")
            .map(|(_, name)| name)
            .collect()
    }
}

/// The order API, every request signed with SigV4 (service `execute-api`) from the SDK
/// configuration's credentials and region, as an API with IAM authentication requires.
/// The local API ignores the signature, so signing is exercised there too.
pub struct Api {
    base: String,
    http: Http<HttpsConnector<HttpConnector>>,
    sdk: SdkConfig,
}

impl Api {
    /// The API at `base` (the stack's `ApiUrl` output, or the local API's address).
    pub fn new(base: &str, sdk: &SdkConfig) -> Result<Self, SmokeError> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: Http::https().map_err(SmokeError)?,
            sdk: sdk.clone(),
        })
    }

    /// `POST /orders` with an idempotency key.
    pub async fn post_order(&self, body: &str, key: &str) -> Result<Response, SmokeError> {
        let headers = [
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ];
        self.send(Method::POST, "/orders", &headers, body).await
    }

    /// `GET /orders/{id}`.
    pub async fn get_order(&self, order_id: &str) -> Result<Response, SmokeError> {
        self.send(Method::GET, &format!("/orders/{order_id}"), &[], "")
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Response, SmokeError> {
        let url = format!("{}{path}", self.base);
        let signed = self.signature(&method, &url, headers, body).await?;
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let body = (!body.is_empty()).then(|| body.to_owned());
        self.http
            .send(method.clone(), &url, &all, body)
            .await
            .map_err(fail(&format!("{method} {path}")))
    }

    /// The headers that sign this request (`authorization`, `x-amz-date`, and the
    /// session token when the credentials have one).
    async fn signature(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Vec<(String, String)>, SmokeError> {
        let provider = self
            .sdk
            .credentials_provider()
            .ok_or_else(|| SmokeError("no AWS credentials configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| SmokeError(format!("AWS credentials: {e}")))?;
        let region = self
            .sdk
            .region()
            .ok_or_else(|| SmokeError("no AWS region configured (AWS_REGION)".into()))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region.as_ref())
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SmokeError(format!("signing: {e}")))?
            .into();
        let request = SignableRequest::new(
            method.as_str(),
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| SmokeError(format!("signing {url}: {e}")))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| SmokeError(format!("signing {url}: {e}")))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect())
    }
}

/// One order of `scenarios.json`: what to send, how often, and the state it must end in.
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    /// What it shows ("happy order").
    pub name: String,
    /// How many times it is sent, with one idempotency key.
    pub submissions: u32,
    /// The final state it must reach.
    pub expect: String,
    /// The request body.
    pub order: Value,
}

#[derive(Deserialize)]
struct Script {
    orders: Vec<Scenario>,
}

/// The orders of `scenarios.json` in `dir`.
pub fn scenarios(dir: &Path) -> Result<Vec<Scenario>, SmokeError> {
    let path = dir.join("scenarios.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SmokeError(format!("{}: {e}", path.display())))?;
    let script: Script =
        serde_json::from_str(&text).map_err(|e| SmokeError(format!("{}: {e}", path.display())))?;
    Ok(script.orders)
}

/// Sets the stock of `stock.json` in `dir` (a table's logical id and its items) in the
/// stack's table of that name.
pub async fn seed_stock(sdk: &SdkConfig, stack: &Deployed, dir: &Path) -> Result<(), SmokeError> {
    let path = dir.join("stock.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SmokeError(format!("{}: {e}", path.display())))?;
    let stock: Value =
        serde_json::from_str(&text).map_err(|e| SmokeError(format!("{}: {e}", path.display())))?;
    let table = stack.physical(stock["table"].as_str().unwrap_or_default())?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    for item in stock["items"].as_array().into_iter().flatten() {
        let item = item
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), attribute(v)))
            .collect();
        dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(failed("seeding stock"))?;
    }
    println!("seeded stock: {}", stock["items"]);
    Ok(())
}

fn attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        other => AttributeValue::S(emulator::intrinsics::scalar_text(other)),
    }
}

/// An order placed by a scenario, and what has been seen of it.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The scenario's name.
    pub name: String,
    /// The final state it must reach.
    pub expect: String,
    /// The order the API created.
    pub order_id: String,
    /// The correlation id the API answered with.
    pub correlation_id: String,
    /// How many submissions were answered as replays (`Idempotent-Replayed`).
    pub replays: u32,
    /// How many submissions there were.
    pub submissions: u32,
    /// The last state `GET` answered.
    pub status: String,
}

impl Placed {
    /// Whether it ended as its scenario says: in the expected state, one order per key,
    /// every repeated submission a replay.
    pub fn passed(&self) -> bool {
        self.status == self.expect && self.replays + 1 == self.submissions
    }
}

/// Places every scenario's order, each with a fresh idempotency key sent `submissions`
/// times, printing each answer. Any answer but 201, or one key giving two orders, stops
/// the run.
pub async fn place(api: &Api, scenarios: &[Scenario]) -> Result<Vec<Placed>, SmokeError> {
    let mut placed = Vec::new();
    for scenario in scenarios {
        let name = &scenario.name;
        let key = uuid::Uuid::new_v4().to_string();
        let body = scenario.order.to_string();
        let mut order = Placed {
            name: name.clone(),
            expect: scenario.expect.clone(),
            order_id: String::new(),
            correlation_id: String::new(),
            replays: 0,
            submissions: scenario.submissions,
            status: "PENDING".into(),
        };
        for _ in 0..scenario.submissions {
            let response = api.post_order(&body, &key).await?;
            let json: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
            let replayed = response.headers.get("idempotent-replayed").is_some();
            println!(
                "POST /orders  {name:<26} -> {} {}{}",
                response.status,
                json["order_id"].as_str().unwrap_or("(no order)"),
                if replayed {
                    "  (Idempotent-Replayed: true)"
                } else {
                    ""
                }
            );
            if response.status != 201 {
                return Err(SmokeError(format!(
                    "{name}: unexpected {}: {}",
                    response.status, response.body
                )));
            }
            let id = json["order_id"].as_str().unwrap_or_default();
            if !order.order_id.is_empty() && order.order_id != id {
                return Err(SmokeError(format!(
                    "{name}: one key gave two orders ({}, {id})",
                    order.order_id
                )));
            }
            order.order_id = id.to_owned();
            order.correlation_id = json["correlation_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            order.replays += u32::from(replayed);
        }
        placed.push(order);
    }
    Ok(placed)
}

/// Reads every order back until all are final or `within` has passed, printing each
/// change of state with the seconds since `started`.
pub async fn follow(
    api: &Api,
    placed: &mut [Placed],
    within: Duration,
    started: SystemTime,
) -> Result<(), SmokeError> {
    let deadline = Instant::now() + within;
    loop {
        let mut changed = false;
        for order in placed
            .iter_mut()
            .filter(|o| !FINAL.contains(&o.status.as_str()))
        {
            let response = api.get_order(&order.order_id).await?;
            let status = serde_json::from_str::<Value>(&response.body)
                .ok()
                .and_then(|j| j["status"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if !status.is_empty() && status != order.status {
                let at = started
                    .elapsed()
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default();
                println!(
                    "  {at:>6.2}s  {:<26} {} -> {status}",
                    order.name, order.status
                );
                order.status = status;
                changed = true;
            }
        }
        if placed.iter().all(|o| FINAL.contains(&o.status.as_str())) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            println!("  gave up waiting after {} s", within.as_secs());
            return Ok(());
        }
        if !changed {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What the smoke test found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every order placed, with its last state.
    pub orders: Vec<Placed>,
    /// Every dead-letter queue, with the messages in it (visible or in flight).
    pub dead_letters: Vec<(String, u64)>,
    /// How many alarms the stack has.
    pub alarms: usize,
    /// The alarms in `ALARM`.
    pub alarming: Vec<String>,
}

impl Report {
    /// Whether the stack works: every order as expected, every DLQ empty, no alarm in
    /// `ALARM`.
    pub fn passed(&self) -> bool {
        self.orders.iter().all(Placed::passed)
            && self.dead_letters.iter().all(|(_, n)| *n == 0)
            && self.alarming.is_empty()
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAIL" }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== smoke report ==")?;
        for order in &self.orders {
            let replays = if order.submissions > 1 {
                format!(
                    ", {} of {} submissions replayed",
                    order.replays,
                    order.submissions - 1
                )
            } else {
                String::new()
            };
            writeln!(
                f,
                "{:<4}  {:<26} {:<15} (expected {}; order {}{replays})",
                verdict(order.passed()),
                order.name,
                order.status,
                order.expect,
                order.order_id
            )?;
        }
        for (queue, depth) in &self.dead_letters {
            writeln!(
                f,
                "{:<4}  {queue:<41} {depth} message(s)",
                verdict(*depth == 0)
            )?;
        }
        let alarms = if self.alarms == 0 {
            "none in this stack".to_owned()
        } else if self.alarming.is_empty() {
            format!("{} watched, none in ALARM", self.alarms)
        } else {
            format!("in ALARM: {}", self.alarming.join(", "))
        };
        writeln!(
            f,
            "{:<4}  alarms: {alarms}",
            verdict(self.alarming.is_empty())
        )?;
        write!(f, "{}", if self.passed() { "PASS" } else { "FAIL" })
    }
}

/// Runs the smoke test against a stack: seeds the demo's stock, places the scenarios'
/// orders, follows them for at most `within`, then reads the DLQs and the alarms.
pub async fn run(
    sdk: &SdkConfig,
    stack: &Deployed,
    scenarios_dir: &Path,
    within: Duration,
) -> Result<Report, SmokeError> {
    let started = SystemTime::now();
    let api_url = stack
        .outputs
        .get("ApiUrl")
        .ok_or_else(|| SmokeError("the stack has no ApiUrl output".into()))?;
    let api = Api::new(api_url, sdk)?;
    seed_stock(sdk, stack, scenarios_dir).await?;
    let mut orders = place(&api, &scenarios(scenarios_dir)?).await?;
    println!("\nwaiting for the orders to reach a final state...");
    follow(&api, &mut orders, within, started).await?;
    Ok(Report {
        orders,
        dead_letters: dead_letters(sdk, stack).await?,
        alarms: stack.alarms().len(),
        alarming: alarming(sdk, stack).await?,
    })
}

/// Every DLQ's depth: visible messages plus those in flight.
async fn dead_letters(sdk: &SdkConfig, stack: &Deployed) -> Result<Vec<(String, u64)>, SmokeError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut depths = Vec::new();
    for (id, url) in stack.dead_letter_queues() {
        let depth = lambda_host::queues::depth(&sqs, url)
            .await
            .map_err(failed(id))?
            .total();
        depths.push((id.to_owned(), depth));
    }
    Ok(depths)
}

/// The stack's alarms that are in `ALARM`, read by name, 100 names per request (the
/// API's limit).
async fn alarming(sdk: &SdkConfig, stack: &Deployed) -> Result<Vec<String>, SmokeError> {
    let names = stack.alarms();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(sdk);
    let mut alarming = Vec::new();
    for chunk in names.chunks(100) {
        let mut pages = cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(chunk.iter().map(|n| (*n).to_owned()).collect()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(failed("alarms"))?;
            alarming.extend(
                page.metric_alarms()
                    .iter()
                    .filter(|a| {
                        a.state_value() == Some(&aws_sdk_cloudwatch::types::StateValue::Alarm)
                    })
                    .filter_map(|a| a.alarm_name().map(str::to_owned)),
            );
        }
    }
    Ok(alarming)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(status: &str, expect: &str, replays: u32, submissions: u32) -> Placed {
        Placed {
            name: "an order".into(),
            expect: expect.into(),
            order_id: "o-1".into(),
            correlation_id: "c-1".into(),
            replays,
            submissions,
            status: status.into(),
        }
    }

    fn report(orders: Vec<Placed>, depth: u64, alarming: &[&str]) -> Report {
        Report {
            orders,
            dead_letters: vec![("PaymentDeadLetterQueue".into(), depth)],
            alarms: 3,
            alarming: alarming.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn a_stack_passes_only_with_every_order_final_as_expected_empty_dlqs_and_no_alarm() {
        let good = || vec![placed("CONFIRMED", "CONFIRMED", 1, 2)];
        assert!(report(good(), 0, &[]).passed());
        assert!(!report(vec![placed("PAID", "CONFIRMED", 0, 1)], 0, &[]).passed());
        assert!(
            !report(vec![placed("CONFIRMED", "CONFIRMED", 0, 2)], 0, &[]).passed(),
            "a second key"
        );
        assert!(!report(good(), 1, &[]).passed(), "a dead letter");
        let alarmed = report(good(), 0, &["stack-PaymentErrorsAlarm-X1"]);
        assert!(!alarmed.passed());
        assert!(
            alarmed
                .to_string()
                .contains("in ALARM: stack-PaymentErrorsAlarm-X1"),
            "{alarmed}"
        );
    }

    #[test]
    fn dead_letter_queues_and_alarms_are_found_among_the_resources() {
        let resource = |kind: &str, physical: &str| (kind.to_owned(), physical.to_owned());
        let stack = Deployed {
            outputs: BTreeMap::new(),
            resources: BTreeMap::from([
                (
                    "PaymentQueue".into(),
                    resource("AWS::SQS::Queue", "https://q/pay"),
                ),
                (
                    "PaymentDeadLetterQueue".into(),
                    resource("AWS::SQS::Queue", "https://q/pay-dlq"),
                ),
                (
                    "PaymentErrorsAlarm".into(),
                    resource("AWS::CloudWatch::Alarm", "s-PaymentErrorsAlarm-1"),
                ),
            ]),
        };
        assert_eq!(
            stack.dead_letter_queues(),
            [("PaymentDeadLetterQueue", "https://q/pay-dlq")]
        );
        assert_eq!(stack.alarms(), ["s-PaymentErrorsAlarm-1"]);
        assert!(stack.physical("OrdersTable").is_err());
    }
}
