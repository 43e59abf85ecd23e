//! The Idempotency-Key rules of POST /orders (IETF draft "The Idempotency-Key HTTP
//! Header Field").

use std::collections::HashSet;

use aws_adapters::DynamoDbIdempotencyStore;
use aws_adapters::tables;
use chrono::Utc;
use domain::idempotency::fingerprint;
use domain::idempotency::{
    Idempotency, IdempotencyRecord, IdempotencyStatus, IdempotencyStore, PutIfAbsent, Seen,
};
use domain::validation::CreateOrderRequest;
use integration_tests::{Harness, new_key, order_body};

fn idempotency(h: &Harness) -> Idempotency<DynamoDbIdempotencyStore> {
    let table = h.stack.table_name("IdempotencyTable").unwrap().to_string();
    Idempotency::new(DynamoDbIdempotencyStore::new(h.dynamodb.clone(), table))
}

fn hash_of(body: &serde_json::Value) -> String {
    let request = CreateOrderRequest::from_json(&body.to_string()).unwrap();
    fingerprint(&serde_json::to_vec(&request).unwrap())
}

#[tokio::test]
async fn a_missing_or_malformed_key_is_refused() {
    let h = Harness::start().await;
    h.post_order(&order_body(), None)
        .await
        .assert_problem(400, "invalid-idempotency-key");
    h.post_order(&order_body(), Some("\"unbalanced"))
        .await
        .assert_problem(400, "invalid-idempotency-key");
    h.post_order(&order_body(), Some(&"k".repeat(300)))
        .await
        .assert_problem(400, "invalid-idempotency-key");
    assert_eq!(h.count_items("OrdersTable", "").await, 0);
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_response() {
    let h = Harness::start().await;
    let key = new_key();
    let first = h.post_order(&order_body(), Some(&key)).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("idempotent-replayed"), None);

    // The same order again, even with a quoted key and reformatted JSON.
    let again = h
        .post_order(&order_body(), Some(&format!("\"{key}\"")))
        .await;
    assert_eq!(again.status, 201, "the original status is replayed");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the original body is replayed");
    assert_eq!(again.header("location"), first.header("location"));

    assert_eq!(
        h.count_items("OrdersTable", tables::ORDER_SK).await,
        1,
        "one order"
    );
    assert_eq!(
        h.count_items("OrdersTable", tables::OUTBOX_SK_PREFIX).await,
        1,
        "one event"
    );
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422() {
    let h = Harness::start().await;
    let key = new_key();
    assert_eq!(h.post_order(&order_body(), Some(&key)).await.status, 201);
    let mut other = order_body();
    other["items"][0]["quantity"] = 3.into();
    h.post_order(&other, Some(&key))
        .await
        .assert_problem(422, "idempotency-key-reused");
    assert_eq!(h.count_items("OrdersTable", tables::ORDER_SK).await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_place_one_order_and_one_event() {
    let h = Harness::start().await;
    let events = h.subscribe_queue("placed-watch", &["OrderPlaced"]).await;
    let key = new_key();
    let body = order_body();
    let responses =
        futures::future::join_all((0..8).map(|_| h.post_order(&body, Some(&key)))).await;

    let mut order_ids = HashSet::new();
    for response in &responses {
        match response.status {
            201 => {
                order_ids.insert(response.json()["order_id"].as_str().unwrap().to_string());
            }
            409 => {
                response.assert_problem(409, "request-in-progress");
                assert!(response.header("retry-after").is_some());
            }
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    assert_eq!(order_ids.len(), 1, "every 201 names the same order");
    assert_eq!(
        responses
            .iter()
            .filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none())
            .count(),
        1,
        "exactly one response is the original"
    );
    assert_eq!(h.count_items("OrdersTable", tables::ORDER_SK).await, 1);

    let mut relay = h.relay_poller();
    h.relay_until_idle(&mut relay).await;
    let messages = h.receive(&events, 1).await;
    assert_eq!(messages.len(), 1, "exactly one OrderPlaced event");
}

#[tokio::test]
async fn a_request_in_flight_gets_409_with_retry_after() {
    let h = Harness::start().await;
    let key = new_key();
    let body = order_body();
    // Another invocation holds the key (claimed, not completed).
    let now_ms = Utc::now().timestamp_millis();
    let claim = idempotency(&h)
        .claim(
            &create_order::record_key(&caller(), &key),
            &hash_of(&body),
            Some(now_ms + 20_000),
            now_ms,
        )
        .await
        .unwrap();
    assert!(matches!(claim, Seen::New(_)));

    let response = h.post_order(&body, Some(&key)).await;
    response.assert_problem(409, "request-in-progress");
    let retry_after: u32 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=21).contains(&retry_after), "{retry_after}");
    assert_eq!(h.count_items("OrdersTable", tables::ORDER_SK).await, 0);
}

#[tokio::test]
async fn an_expired_key_is_free_again_even_before_ttl_deletes_it() {
    let h = Harness::start().await;
    let key = new_key();
    // A completed record for a different body, whose TTL passed an hour ago but which
    // DynamoDB has not deleted yet.
    let long_ago = Utc::now().timestamp() - 25 * 3600;
    let stale = IdempotencyRecord::completed(
        create_order::record_key(&caller(), &key),
        "some-other-hash".into(),
        "{}".into(),
        long_ago,
    );
    let store = idempotency(&h);
    assert_eq!(
        store.store().put_if_absent(&stale, long_ago).await.unwrap(),
        PutIfAbsent::Written
    );
    assert_eq!(
        stale.status_at(Utc::now().timestamp()),
        IdempotencyStatus::Expired
    );

    let response = h.post_order(&order_body(), Some(&key)).await;
    assert_eq!(response.status, 201, "{}", response.body);
    assert_eq!(response.header("idempotent-replayed"), None);
    assert_eq!(h.count_items("OrdersTable", tables::ORDER_SK).await, 1);
}

/// The harness's caller, as create-order scopes its keys by it.
fn caller() -> domain::ids::Caller {
    domain::ids::Caller::parse(integration_tests::CALLER).expect("the harness's caller is valid")
}
