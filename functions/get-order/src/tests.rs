//! The handler against the in-memory fake, through the same HTTP shell Lambda runs
//! (`HttpFunction::handle`); the integration tests read from DynamoDB.

use domain::events::Envelope;
use domain::failure::Failure;
use domain::fixtures::{APPROVED_TOKEN, OWNER, SampleOrder};
use domain::idempotency::IdempotencyRecord;
use domain::order::Order;
use domain::ports::{InMemoryOrderStore, PlaceOutcome, StoredOrder, Transition, TransitionOutcome};
use lambda_http::{Body, Response};
use serde_json::Value;

use super::*;

/// `GET /orders/{id}` as a local tool sends it, signed by the sample orders' owner: the
/// id only in the path.
fn get(id: &str) -> Request {
    get_as(id, OWNER)
}

/// `GET /orders/{id}` signed by `caller`.
fn get_as(id: &str, caller: &str) -> Request {
    let request = http::Request::builder()
        .uri(format!("/orders/{id}"))
        .header("x-correlation-id", "corr-7")
        .body(Body::Empty)
        .expect("a valid request");
    http_api::with_caller(request, caller)
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

/// Another caller's GET of an order is the 404 of an order that does not exist, with
/// nothing of the order in it; so is an order stored before orders had owners.
#[tokio::test]
async fn another_callers_order_is_not_found() {
    let (store, sample) = stored().await;
    let id = sample.order.order_id.to_string();
    let app = App::new(store.clone());
    let other = app
        .handle(get_as(&id, "arn:aws:iam::000000000000:user/mallory"))
        .await;
    assert_eq!(other.status(), 404);
    assert_eq!(problem_type(&other), "not-found");
    let unknown = app.handle(get_as(&OrderId::new().to_string(), OWNER)).await;
    assert_eq!(
        serde_json::from_slice::<Value>(other.body()).unwrap()["title"],
        serde_json::from_slice::<Value>(unknown.body()).unwrap()["title"]
    );
    assert!(!String::from_utf8_lossy(other.body()).contains(sample.order.customer_id.as_str()));

    let ownerless = SampleOrder::placed(APPROVED_TOKEN);
    let mut stored = ownerless.stored();
    stored.owner = None;
    let record = IdempotencyRecord::completed("create-order#x".into(), "h".into(), "{}".into(), 0);
    store
        .place(&stored, &ownerless.placed, &record)
        .await
        .unwrap();
    let response = app.handle(get(&ownerless.order.order_id.to_string())).await;
    assert_eq!(response.status(), 404);
}

/// A request without a caller identity (a route without IAM auth) is a 500 that reads
/// nothing, never an order answered to nobody.
#[tokio::test]
async fn a_request_without_a_caller_is_refused() {
    let (store, sample) = stored().await;
    let unsigned = http::Request::builder()
        .uri(format!("/orders/{}", sample.order.order_id))
        .body(Body::Empty)
        .expect("a valid request");
    let response = App::new(store).handle(unsigned).await;
    assert_eq!(response.status(), 500);
    assert_eq!(problem_type(&response), "internal-error");
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

    async fn get_stored(&self, _: OrderId) -> Result<Option<StoredOrder>, Failure> {
        Err(self.failure.clone())
    }

    async fn place(
        &self,
        new: &StoredOrder,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> Result<PlaceOutcome, Failure> {
        self.store.place(new, event, idempotency).await
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
