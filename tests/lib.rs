//! The test harness: a fresh emulator per test, provisioned from template.yaml, and the
//! real function handlers wired exactly as their `main` wires them, with real AWS SDK
//! clients talking HTTP to the emulator.
//!
//! Handlers are called in-process (fast, debuggable); the event sources that feed them
//! (the relay's DynamoDB stream mapping) are emulated by `local/`, which the local
//! Lambda host builds on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_adapters::runtime::{EventFunction, HttpFunction};
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use domain::ports::StockStore;
use emulator::Emulator;
use emulator::provision::{Stack, provision};
use emulator::template::Template;
use http::HeaderMap;
use lambda_host::invoke::{Invoke, InvokeError, from_fn};
use lambda_host::pipeline::Pipeline;
use lambda_host::streams::StreamPoller;
use lambda_http::Body;
use serde_json::Value;

pub mod contract;
pub mod nested;
use contract::Contract;

/// How long a test waits for something to happen before failing.
/// The IAM principal the harness signs API requests as, unless a test names another.
pub const CALLER: &str = "arn:aws:iam::000000000000:user/test-client";

pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running emulator with the template's resources and the functions under test.
pub struct Harness {
    /// The emulator process (stopped when the harness drops).
    pub emulator: Emulator,
    /// The provisioned resources, by logical id.
    pub stack: Stack,
    /// SDK configuration pointing at the emulator.
    pub sdk: SdkConfig,
    /// DynamoDB client for assertions.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SNS client for assertions and fault injection.
    pub sns: aws_sdk_sns::Client,
    /// SQS client for observing published events.
    pub sqs: aws_sdk_sqs::Client,
    create_order: create_order::wiring::LiveApp,
    get_order: get_order::wiring::LiveApp,
    relay: event_relay::wiring::LiveRelay,
    signed_as_functions: bool,
}

/// The SDK configuration the function `id` is wired with: the emulator's, signed as the
/// function when `signed_as_functions` (so the fault injector can single it out).
fn sdk_for(emulator: &Emulator, sdk: &SdkConfig, signed_as_functions: bool, id: &str) -> SdkConfig {
    if signed_as_functions {
        emulator.sdk_config_signed_as(id)
    } else {
        sdk.clone()
    }
}

/// Builds the function `id` as its `main` does: its settings from the environment the
/// template gives it, then its `wiring::live`.
async fn wire<C, A, Fut>(
    stack: &Stack,
    id: &str,
    sdk: SdkConfig,
    live: impl FnOnce(SdkConfig, C) -> Fut,
) -> A
where
    C: serde::de::DeserializeOwned,
    Fut: std::future::Future<Output = Result<A, aws_adapters::runtime::Error>>,
{
    let env = stack
        .function_env(id)
        .expect("the template has the function");
    let config = aws_adapters::config::load(&lookup(&env))
        .unwrap_or_else(|e| panic!("the template sets {id}'s settings: {e}"));
    live(sdk, config)
        .await
        .unwrap_or_else(|e| panic!("{id} starts: {e}"))
}

/// An HTTP response, read fully.
#[derive(Debug)]
pub struct ApiResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub body: String,
}

impl ApiResponse {
    /// The body as JSON (panics with the body if it is not JSON: this is test code).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.body))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json response with the given status and `type` slug.
    pub fn assert_problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(self.status, status, "status of {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "content type of {}",
            self.body
        );
        let problem = self.json();
        assert_eq!(
            problem["type"],
            format!("{}{slug}", domain::problem::TYPE_BASE),
            "type of {problem}"
        );
        assert_eq!(problem["status"], status);
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "detail in {problem}"
        );
        problem
    }
}

impl Harness {
    /// Starts an emulator, provisions template.yaml on it and wires the functions.
    pub async fn start() -> Harness {
        Self::start_with(false).await
    }

    /// Like [`Harness::start`], but each function's clients sign with the function's
    /// logical id, as the local host's functions do. The emulator's fault injector only
    /// fails requests signed by a function, so this is how a test makes AWS unkind to
    /// the code under test while its own checks still get through.
    pub async fn start_signed_as_functions() -> Harness {
        Self::start_with(true).await
    }

    async fn start_with(signed_as_functions: bool) -> Harness {
        let emulator = Emulator::start().await.expect("emulator starts");
        let sdk = emulator.sdk_config();
        let template =
            Template::translate(&Template::workspace_template()).expect("template translates");
        let stack = provision(&sdk, &template)
            .await
            .expect("template provisions");
        let sdk_of = |id: &str| sdk_for(&emulator, &sdk, signed_as_functions, id);
        let create_order = wire(
            &stack,
            "CreateOrderFunction",
            sdk_of("CreateOrderFunction"),
            create_order::wiring::live,
        )
        .await;
        let get_order = wire(
            &stack,
            "GetOrderFunction",
            sdk_of("GetOrderFunction"),
            get_order::wiring::live,
        )
        .await;
        let relay = wire(
            &stack,
            "EventRelayFunction",
            sdk_of("EventRelayFunction"),
            event_relay::wiring::live,
        )
        .await;
        Harness {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            create_order,
            get_order,
            relay,
            emulator,
            stack,
            sdk,
            signed_as_functions,
        }
    }

    /// The SDK configuration the function `id` is wired with.
    pub fn function_sdk(&self, id: &str) -> SdkConfig {
        sdk_for(&self.emulator, &self.sdk, self.signed_as_functions, id)
    }

    /// `POST /orders` with a JSON body and an optional idempotency key.
    pub async fn post_order(&self, body: &Value, key: Option<&str>) -> ApiResponse {
        self.post_order_as(CALLER, body, key).await
    }

    /// `POST /orders` signed by `caller`.
    pub async fn post_order_as(
        &self,
        caller: &str,
        body: &Value,
        key: Option<&str>,
    ) -> ApiResponse {
        let mut request = http::Request::builder()
            .method("POST")
            .uri("/orders")
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let request = request.body(Body::from(body.to_string())).expect("request");
        self.send(aws_adapters::http_api::with_caller(request, caller))
            .await
    }

    /// Sends any request to the function that owns its route, as [`CALLER`] signed it
    /// unless it names a caller of its own ([`aws_adapters::http_api::with_caller`]).
    /// Every answer is checked against the API contract (`docs/openapi.yaml`).
    pub async fn send(&self, request: lambda_http::Request) -> ApiResponse {
        use lambda_http::RequestExt;
        let request = if request.request_context_ref().is_some() {
            request
        } else {
            aws_adapters::http_api::with_caller(request, CALLER)
        };
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let response = if request.method() == http::Method::POST {
            self.create_order.handle(request).await
        } else {
            self.get_order.handle(request).await
        };
        let (parts, body) = response.into_parts();
        let body = match body {
            Body::Empty => String::new(),
            Body::Text(text) => text,
            Body::Binary(bytes) => String::from_utf8(bytes).expect("UTF-8 response"),
            _ => String::new(),
        };
        let answer = ApiResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        };
        Contract::get().check_answer(
            &method,
            &path,
            answer.status,
            answer.header("content-type"),
            &answer.body,
        );
        answer
    }

    /// `GET /orders/{id}`, with the path parameter as API Gateway passes it.
    pub async fn get_order(&self, id: &str) -> ApiResponse {
        self.get_order_as(CALLER, id).await
    }

    /// `GET /orders/{id}` signed by `caller`.
    pub async fn get_order_as(&self, caller: &str, id: &str) -> ApiResponse {
        use lambda_http::RequestExt;
        let request = http::Request::builder()
            .method("GET")
            .uri(format!("/orders/{id}"))
            .body(Body::Empty)
            .expect("request")
            .with_path_parameters(std::collections::HashMap::from([(
                "id".to_string(),
                id.to_string(),
            )]));
        self.send(aws_adapters::http_api::with_caller(request, caller))
            .await
    }

    /// The event relay's stream mapping from the template, as a poller.
    pub fn relay_poller(&self) -> StreamPoller {
        let mapping = self
            .stack
            .stream_mappings()
            .into_iter()
            .find(|m| m.function == "EventRelayFunction")
            .expect("template maps the orders stream to EventRelayFunction");
        StreamPoller::new(&self.sdk, mapping)
    }

    /// The relay handler behind Lambda's JSON interface, configured from the template.
    pub fn relay_function(&self) -> impl Invoke + use<> {
        let relay = self.relay.clone();
        from_fn(move |event: Value| {
            let relay = relay.clone();
            async move { lambda_response(relay.handle(lambda_event(event)?).await) }
        })
    }

    /// Runs the relay until the stream is drained (or the deadline passes).
    pub async fn relay_until_idle(&self, poller: &mut StreamPoller) {
        let relay = self.relay_function();
        poller
            .run_until_idle(&relay, Instant::now() + DEADLINE)
            .await
            .expect("relay drains the stream");
    }

    /// A queue subscribed to the order-events topic with raw delivery, filtered to the
    /// given event types: a stand-in consumer that lets tests see what was published.
    pub async fn subscribe_queue(&self, name: &str, types: &[&str]) -> String {
        let filter = serde_json::json!({ "type": types }).to_string();
        self.subscribe_raw(&self.topic_arn(), name, Some(filter))
            .await
    }

    /// A new queue subscribed to `topic_arn` with raw delivery and an optional filter.
    async fn subscribe_raw(&self, topic_arn: &str, name: &str, filter: Option<String>) -> String {
        let queue_url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let queue_arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("queue arn");
        let mut subscribe = self
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true");
        if let Some(filter) = filter {
            subscribe = subscribe.attributes("FilterPolicy", filter);
        }
        subscribe.send().await.expect("subscribe");
        queue_url
    }

    /// The order-events topic's ARN.
    pub fn topic_arn(&self) -> String {
        self.stack
            .topic_arn("OrderEventsTopic")
            .expect("template declares OrderEventsTopic")
            .to_string()
    }

    /// Receives until `expected` messages arrived, then keeps listening briefly to catch
    /// any extra (duplicate) ones; fails at the deadline.
    pub async fn receive(&self, queue_url: &str, expected: usize) -> Vec<Message> {
        let deadline = Instant::now() + DEADLINE;
        let mut messages = Vec::new();
        let mut quiet_polls = 0;
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(if messages.len() >= expected { 1 } else { 2 })
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            self.delete(queue_url, &batch).await;
            quiet_polls = if batch.is_empty() { quiet_polls + 1 } else { 0 };
            messages.extend(batch);
            if messages.len() >= expected && quiet_polls >= 1 {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "got {} of {expected} messages before the deadline",
                messages.len()
            );
        }
    }

    /// Deletes received messages, so they are not seen again.
    async fn delete(&self, queue_url: &str, messages: &[Message]) {
        for message in messages {
            if let Some(handle) = &message.receipt_handle {
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// Every item of a template table, read consistently (test-sized tables: one page).
    pub async fn items(
        &self,
        logical_table: &str,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let table = self.stack.table_name(logical_table).expect("table");
        let page = self
            .dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan");
        assert!(page.last_evaluated_key.is_none(), "one page");
        page.items.unwrap_or_default()
    }

    /// Counts the items of a table (test-sized tables only).
    pub async fn count_items(&self, logical_table: &str, sk_prefix: &str) -> usize {
        self.items(logical_table)
            .await
            .iter()
            .filter(|item| {
                item.get("sk")
                    .and_then(|sk| sk.as_s().ok())
                    .is_some_and(|sk| sk.starts_with(sk_prefix))
            })
            .count()
    }
}

/// A settings lookup over a function's resolved template environment.
pub fn lookup(env: &BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| env.get(name).cloned()
}

/// A valid order body.
pub fn order_body() -> Value {
    serde_json::json!({
        "customer_id": "cust-4711",
        "currency": "EUR",
        "items": [
            {"sku": "SKU-MUG", "quantity": 2, "unit_price_minor": 1250},
            {"sku": "SKU-TEE", "quantity": 1, "unit_price_minor": 1999}
        ],
        "payment_token": "tok_visa"
    })
}

/// A fresh idempotency key.
pub fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Turns Lambda's JSON event into the typed event a handler takes.
fn lambda_event<T: serde::de::DeserializeOwned>(
    event: Value,
) -> Result<lambda_runtime::LambdaEvent<T>, InvokeError> {
    let payload = serde_json::from_value(event)
        .map_err(|e| InvokeError::new("Runtime.UnmarshalError", e.to_string()))?;
    Ok(lambda_runtime::LambdaEvent::new(
        payload,
        Default::default(),
    ))
}

/// Turns a handler's response into Lambda's JSON response.
fn lambda_response<T: serde::Serialize>(response: T) -> Result<Value, InvokeError> {
    serde_json::to_value(response)
        .map_err(|e| InvokeError::new("Runtime.MarshalError", e.to_string()))
}

/// The pipeline's functions, wired from the template like their `main`s wire them.
pub struct Consumers {
    /// payment
    pub payment: Arc<payment::wiring::LiveApp>,
    /// inventory
    pub inventory: Arc<inventory::wiring::LiveApp>,
    /// notification
    pub notification: Arc<notification::wiring::LiveApp>,
}

impl Harness {
    /// Builds payment, inventory and notification from the template's settings.
    pub async fn consumers(&self) -> Consumers {
        let payment = wire(
            &self.stack,
            "PaymentFunction",
            self.function_sdk("PaymentFunction"),
            payment::wiring::live,
        )
        .await;
        let inventory = wire(
            &self.stack,
            "InventoryFunction",
            self.function_sdk("InventoryFunction"),
            inventory::wiring::live,
        )
        .await;
        let notification = wire(
            &self.stack,
            "NotificationFunction",
            self.function_sdk("NotificationFunction"),
            notification::wiring::live,
        )
        .await;
        Consumers {
            payment: Arc::new(payment),
            inventory: Arc::new(inventory),
            notification: Arc::new(notification),
        }
    }

    /// Every function behind Lambda's JSON interface, by logical id.
    pub fn functions(&self, consumers: &Consumers) -> HashMap<String, Arc<dyn Invoke>> {
        let payment = consumers.payment.clone();
        let inventory = consumers.inventory.clone();
        let notification = consumers.notification.clone();
        let mut functions: HashMap<String, Arc<dyn Invoke>> = HashMap::new();
        functions.insert("EventRelayFunction".into(), Arc::new(self.relay_function()));
        functions.insert(
            "PaymentFunction".into(),
            Arc::new(from_fn(move |event| {
                let app = payment.clone();
                async move { lambda_response(app.handle(lambda_event::<SqsEvent>(event)?).await) }
            })),
        );
        functions.insert(
            "InventoryFunction".into(),
            Arc::new(from_fn(move |event| {
                let app = inventory.clone();
                async move { lambda_response(app.handle(lambda_event::<SqsEvent>(event)?).await) }
            })),
        );
        functions.insert(
            "NotificationFunction".into(),
            Arc::new(from_fn(move |event| {
                let app = notification.clone();
                async move { lambda_response(app.handle(lambda_event::<SqsEvent>(event)?).await) }
            })),
        );
        functions
    }

    /// The whole pipeline: the relay's stream mapping and every consumer's queue mapping.
    pub async fn pipeline(&self) -> (Pipeline, Consumers) {
        let consumers = self.consumers().await;
        let pipeline = Pipeline::new(&self.sdk, &self.stack, &self.functions(&consumers));
        (pipeline, consumers)
    }

    /// Runs the pipeline until nothing moves any more.
    pub async fn settle(&self, pipeline: &mut Pipeline) {
        pipeline
            .run_until_quiet(Instant::now() + Duration::from_secs(60))
            .await
            .expect("the pipeline settles");
    }

    /// Sets a SKU's stock.
    pub async fn seed_stock(&self, consumers: &Consumers, sku: &str, units: u64) {
        let sku = domain::ids::Sku::parse(sku).expect("valid SKU");
        consumers
            .inventory
            .stock_store()
            .set_stock(&sku, units)
            .await
            .expect("seed stock");
    }

    /// A SKU's stock.
    pub async fn stock(&self, consumers: &Consumers, sku: &str) -> Option<u64> {
        let sku = domain::ids::Sku::parse(sku).expect("valid SKU");
        consumers
            .inventory
            .stock_store()
            .stock(&sku)
            .await
            .expect("read stock")
    }

    /// An order's status as the API reports it.
    pub async fn status_of(&self, order_id: &str) -> String {
        let read = self.get_order(order_id).await;
        assert_eq!(read.status, 200, "{}", read.body);
        read.json()["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The payment provider's ledger entries of one kind (`charge` or `refund`) for an order.
    pub async fn ledger(
        &self,
        kind: &str,
        order_id: &str,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let wanted = Some((order_id, kind == "charge"));

        let table = self
            .stack
            .table_name("PaymentsTable")
            .expect("payments table")
            .to_string();
        self.dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan ledger")
            .items
            .unwrap_or_default()
            .into_iter()
            .filter(|item| {
                item.get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| aws_adapters::tables::ledger_entry_order(pk))
                    == wanted
            })
            .collect()
    }

    /// A queue subscribed (raw) to the customer-notifications topic, to see what customers
    /// are told.
    pub async fn watch_notifications(&self) -> String {
        let topic = self
            .stack
            .topic_arn("CustomerNotificationsTopic")
            .expect("template declares CustomerNotificationsTopic")
            .to_string();
        self.subscribe_raw(&topic, "notifications-watch", None)
            .await
    }

    /// Everything on a queue right now (received and deleted), as JSON bodies.
    pub async fn drain(&self, queue_url: &str) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            self.delete(queue_url, &batch).await;
            all.extend(batch);
        }
    }
}

/// The `kind` of each notification message, for one order.
pub fn notification_kinds(messages: &[Message], order_id: &str) -> Vec<String> {
    let mut kinds: Vec<String> = messages
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m.body.as_deref()?).ok())
        .filter(|n| n["order_id"] == order_id)
        .map(|n| n["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds
}

/// An order body with its own SKUs, quantities and token.
pub fn order_with(lines: &[(&str, u32)], token: &str) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(sku, quantity)| serde_json::json!({"sku": sku, "quantity": quantity, "unit_price_minor": 1000}))
        .collect();
    serde_json::json!({
        "customer_id": "cust-4711",
        "currency": "EUR",
        "items": items,
        "payment_token": token,
    })
}

/// Log lines captured from the functions under test, as the JSON objects they write.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Captures every log line of this thread (a `#[tokio::test]` runs the handlers on
    /// it) as JSON, until the guard drops.
    pub fn install() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
        let logs = CapturedLogs::default();
        let sink = logs.0.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Every captured line, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }
}
