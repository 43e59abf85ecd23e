//! The handler against the in-memory fake, through the same HTTP shell Lambda runs
//! (`HttpFunction::handle`); the integration tests read from DynamoDB.

use domain::events::Envelope;
use domain::failure::Failure;
use domain::fixtures::{APPROVED_TOKEN, SampleOrder};
use domain::idempotency::IdempotencyRecord;
use domain::order::{Order, PaymentToken};
use domain::ports::{
    InMemoryOrderStore, OrderToCharge, PlaceOutcome, Transition, TransitionOutcome,
};
use lambda_http::{Body, Response};
use serde_json::Value;

use super::*;

/// `GET /orders/{id}` as a local tool sends it: the id only in the path.
fn get(id: &str) -> Request {
    http::Request::builder()
        .uri(format!("/orders/{id}"))
        .header("x-correlation-id", "corr-7")
        .body(Body::Empty)
        .expect("a valid request")
}

/// The `type` slug of a problem+json answer.
fn problem_type(response: &Response<Body>) -> String {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = serde_json::from_slice(response.body()).expect("a JSON problem");
    let slug = problem["type"].as_str().and_then(|t| t.rsplit('/').next());
    slug.unwrap_or_default().to_owned()
}

/// A fake holding one placed order.
async fn stored() -> (InMemoryOrderStore, SampleOrder) {
    let store = InMemoryOrderStore::default();
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    assert_eq!(sample.store_in(&store).await, Ok(PlaceOutcome::Placed));
    (store, sample)
}

#[tokio::test]
async fn a_stored_order_is_a_200_with_the_order() {
    let (store, sample) = stored().await;
    let response = App::new(store)
        .handle(get(&sample.order.order_id.to_string()))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-correlation-id"], "corr-7");
    let body: Value = serde_json::from_slice(response.body()).expect("the order as JSON");
    assert_eq!(
        body,
        serde_json::to_value(&sample.order).expect("an order encodes")
    );
    let text = String::from_utf8_lossy(response.body());
    assert!(
        !text.contains(APPROVED_TOKEN),
        "never the card token: {text}"
    );
}

#[tokio::test]
async fn reading_twice_answers_the_same_and_changes_nothing() {
    let (store, sample) = stored().await;
    let app = App::new(store.clone());
    let id = sample.order.order_id.to_string();
    let first = app.handle(get(&id)).await;
    let again = app.handle(get(&id)).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.body(), first.body());
    assert_eq!(store.order_count(), 1);
    assert_eq!(store.outbox(), vec![sample.placed]);
}

#[tokio::test]
async fn an_unknown_or_malformed_id_is_a_404() {
    let (store, _) = stored().await;
    let app = App::new(store);
    for id in [OrderId::new().to_string(), "not-an-order-id".to_owned()] {
        let response = app.handle(get(&id)).await;
        assert_eq!(response.status(), 404, "{id}");
        assert_eq!(problem_type(&response), "not-found");
        assert_eq!(response.headers()["x-correlation-id"], "corr-7");
    }
}

/// The fake, except that reading fails with `failure`: the order is there, the store
/// cannot answer for it now.
struct ReadFails {
    store: InMemoryOrderStore,
    failure: Failure,
}

impl OrderStore for ReadFails {
    async fn get(&self, _: OrderId) -> Result<Option<Order>, Failure> {
        Err(self.failure.clone())
    }

    async fn get_to_charge(&self, _: OrderId) -> Result<Option<OrderToCharge>, Failure> {
        Err(self.failure.clone())
    }

    async fn place(
        &self,
        order: &Order,
        payment_token: &PaymentToken,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> Result<PlaceOutcome, Failure> {
        self.store
            .place(order, payment_token, event, idempotency)
            .await
    }

    async fn transition(&self, transition: &Transition) -> Result<TransitionOutcome, Failure> {
        self.store.transition(transition).await
    }
}

/// `GET` of a stored order from a store whose reads fail with `failure`.
async fn read_failing_with(failure: Failure) -> Response<Body> {
    let (store, sample) = stored().await;
    App::new(ReadFails { store, failure })
        .handle(get(&sample.order.order_id.to_string()))
        .await
}

#[tokio::test]
async fn a_throttled_store_is_a_503_with_retry_after_not_a_404() {
    let throttled = read_failing_with(Failure::Transient("throttled".into())).await;
    assert_eq!(throttled.status(), 503);
    assert_eq!(problem_type(&throttled), "service-unavailable");
    assert_eq!(throttled.headers()["retry-after"], "1");
    assert_eq!(throttled.headers()["x-correlation-id"], "corr-7");
}

#[tokio::test]
async fn a_broken_store_is_a_500_without_retry_after() {
    let broken = read_failing_with(Failure::Permanent("access denied".into())).await;
    assert_eq!(broken.status(), 500);
    assert_eq!(problem_type(&broken), "internal-error");
    assert!(!broken.headers().contains_key("retry-after"));
}
