//! The handler against the in-memory fakes, through the same HTTP shell Lambda runs
//! (`HttpFunction::handle`); the same rules run against DynamoDB in the integration
//! tests.

use domain::events::EventType;
use domain::failure::Failure;
use domain::ports::{InMemoryOrderStore, StoredOrder, Transition, TransitionOutcome};
use lambda_http::{Body, Response};
use serde_json::Value;

use super::*;

fn app() -> (App<InMemoryOrderStore>, InMemoryOrderStore) {
    let store = InMemoryOrderStore::default();
    (App::new(store.clone()), store)
}

/// The caller of most tests.
const CALLER: &str = "arn:aws:iam::000000000000:user/alice";

fn request(key: &str, body: &str) -> Request {
    request_as(CALLER, key, body)
}

/// `POST /orders` signed by `caller`.
fn request_as(caller: &str, key: &str, body: &str) -> Request {
    let request = http::Request::builder()
        .method("POST")
        .uri("/orders")
        .header("content-type", "application/json; charset=utf-8")
        .header("x-correlation-id", "corr-1")
        .header(IDEMPOTENCY_HEADER, key)
        .body(Body::from(body.to_owned()))
        .expect("a valid request");
    http_api::with_caller(request, caller)
}

/// The problem+json body of `response`, after checking its status.
fn problem(response: &Response<Body>, status: u16) -> Value {
    assert_eq!(response.status(), status, "{:?}", response.body());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    serde_json::from_slice(response.body()).expect("a JSON problem")
}

const ORDER: &str = r#"{"customer_id":"cust-0001","currency":"USD","items":[{"sku":"SKU-1","quantity":3,"unit_price_minor":500}],"payment_token":"tok_visa"}"#;

#[tokio::test]
async fn a_new_order_is_stored_with_exactly_one_outbox_event() {
    let (app, store) = app();
    let response = app.handle(request("key-1", ORDER)).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-correlation-id"], "corr-1");
    let order: Value = serde_json::from_slice(response.body()).expect("the order as JSON");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["correlation_id"], "corr-1");
    assert_eq!(
        response.headers()["location"],
        format!("/orders/{}", order["order_id"].as_str().unwrap_or_default())
    );
    assert_eq!(store.order_count(), 1);
    let outbox = store.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].event_type(), EventType::OrderPlaced);
    assert_eq!(outbox[0].correlation_id.as_str(), "corr-1");
}

/// The token is stored with the order for payment, and is in neither the event, the
/// answer, nor the answer a replay sends.
#[tokio::test]
async fn the_card_token_is_stored_with_the_order_and_nowhere_else() {
    let (app, store) = app();
    let first = app.handle(request("key-1", ORDER)).await;
    let replay = app.handle(request("key-1", ORDER)).await;
    assert_eq!(first.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    let order: Value = serde_json::from_slice(first.body()).expect("the order as JSON");
    let id = OrderId::parse(order["order_id"].as_str().unwrap_or_default()).expect("an id");
    let stored = store.get_stored(id).await.unwrap().expect("stored");
    assert_eq!(
        stored.payment_token.as_ref().map(|t| t.expose()),
        Some("tok_visa")
    );
    for (what, text) in [
        ("answer", String::from_utf8_lossy(first.body()).into_owned()),
        (
            "replay",
            String::from_utf8_lossy(replay.body()).into_owned(),
        ),
        ("event", store.outbox()[0].to_json().unwrap()),
    ] {
        assert!(
            !text.contains("tok_visa"),
            "the {what} has the token: {text}"
        );
    }
    assert!(order.get("payment_token").is_none());
}

#[tokio::test]
async fn a_repeat_replays_and_a_different_body_is_refused() {
    let (app, store) = app();
    let first = app.handle(request("key-1", ORDER)).await;
    let again = app.handle(request("key-1", ORDER)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.body(), first.body());
    let other = ORDER.replace("\"quantity\":3", "\"quantity\":4");
    let reused = problem(&app.handle(request("key-1", &other)).await, 422);
    assert!(
        reused["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/idempotency-key-reused"))
    );
    assert_eq!(store.order_count(), 1);
    assert_eq!(store.outbox().len(), 1);
}

#[tokio::test]
async fn a_broken_rule_is_a_400_naming_the_field_and_stores_nothing() {
    let (app, store) = app();
    let zero = ORDER.replace("\"quantity\":3", "\"quantity\":0");
    let problem = problem(&app.handle(request("key-1", &zero)).await, 400);
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/validation-failed"))
    );
    assert_eq!(problem["errors"][0]["field"], "items[0].quantity");
    assert_eq!(problem["correlation_id"], "corr-1");
    assert_eq!(store.order_count(), 0);
    assert!(store.outbox().is_empty());
}

#[tokio::test]
async fn bad_requests_store_nothing() {
    let (app, store) = app();
    assert_eq!(app.handle(request("key-1", "{")).await.status(), 400);
    let wrong_type = http::Request::builder()
        .method("POST")
        .header("content-type", "application/xml")
        .header(IDEMPOTENCY_HEADER, "key-2")
        .body(Body::from(ORDER))
        .expect("a valid request");
    let wrong_type = http_api::with_caller(wrong_type, CALLER);
    assert_eq!(app.handle(wrong_type).await.status(), 415);
    assert_eq!(store.order_count(), 0);
}

/// The fake, except that placing an order fails with `failure`: the store throttled or
/// down at the worst moment, after validation and the idempotency check.
struct PlaceFails {
    store: InMemoryOrderStore,
    failure: Failure,
}

impl OrderStore for PlaceFails {
    async fn place(
        &self,
        _: &StoredOrder,
        _: &Envelope,
        _: &IdempotencyRecord,
    ) -> Result<PlaceOutcome, Failure> {
        Err(self.failure.clone())
    }

    async fn transition(&self, transition: &Transition) -> Result<TransitionOutcome, Failure> {
        self.store.transition(transition).await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, Failure> {
        self.store.get(id).await
    }

    async fn get_stored(&self, id: OrderId) -> Result<Option<StoredOrder>, Failure> {
        self.store.get_stored(id).await
    }
}

#[tokio::test]
async fn a_throttled_store_is_a_503_to_retry_with_the_same_key() {
    let store = InMemoryOrderStore::default();
    let failing = App::new(PlaceFails {
        store: store.clone(),
        failure: Failure::Transient("throttled".into()),
    });
    let response = failing.handle(request("key-1", ORDER)).await;
    let problem = problem(&response, 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/service-unavailable"))
    );
    assert_eq!(store.order_count(), 0);
    assert!(store.outbox().is_empty());

    // Nothing was half-stored, so the retry the 503 asks for places the order once.
    let recovered = App::new(store.clone());
    assert_eq!(
        recovered.handle(request("key-1", ORDER)).await.status(),
        201
    );
    assert_eq!(store.order_count(), 1);
    assert_eq!(store.outbox().len(), 1);
}

#[tokio::test]
async fn a_broken_store_is_a_500_without_retry_after() {
    let store = InMemoryOrderStore::default();
    let failing = App::new(PlaceFails {
        store: store.clone(),
        failure: Failure::Permanent("access denied".into()),
    });
    let response = failing.handle(request("key-1", ORDER)).await;
    let problem = problem(&response, 500);
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/internal-error"))
    );
    assert!(!response.headers().contains_key("retry-after"));
    assert_eq!(store.order_count(), 0);
}

/// An Idempotency-Key is its caller's own: a second caller who picks the same key places
/// an order of its own (no replay of the first caller's answer, no 422 telling it the key
/// is taken), the order is stored as the caller's, and each caller's retry replays its own.
#[tokio::test]
async fn the_same_key_from_two_callers_places_two_orders() {
    let (app, store) = app();
    let bob = "arn:aws:iam::000000000000:user/bob";
    let first = app.handle(request("shared-key", ORDER)).await;
    let second = app.handle(request_as(bob, "shared-key", ORDER)).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (201, 201)
    );
    assert!(!second.headers().contains_key("idempotent-replayed"));
    let id = |response: &Response<Body>| {
        serde_json::from_slice::<Value>(response.body()).unwrap()["order_id"].clone()
    };
    assert_ne!(id(&first), id(&second));
    assert_eq!(store.order_count(), 2);

    let replay = app.handle(request_as(bob, "shared-key", ORDER)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(id(&replay), id(&second));
    let order_id = OrderId::parse(id(&second).as_str().unwrap()).unwrap();
    let stored = store.get_stored(order_id).await.unwrap().unwrap();
    assert_eq!(stored.owner.as_ref().map(|c| c.as_str()), Some(bob));
    assert!(
        !String::from_utf8_lossy(second.body()).contains(bob),
        "the owner stays stored"
    );
}
