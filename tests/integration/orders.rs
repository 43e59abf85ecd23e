//! Placing an order and reading it back.

use integration_tests::{Harness, new_key, order_body};

#[tokio::test]
async fn a_placed_order_can_be_read_back() {
    let h = Harness::start().await;
    let created = h.post_order(&order_body(), Some(&new_key())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("content-type"), Some("application/json"));
    let order = created.json();
    let id = order["order_id"].as_str().expect("order_id").to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("/orders/{id}").as_str())
    );
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["total"]["amount_minor"], 4499);
    assert_eq!(order["total"]["currency"], "EUR");
    assert!(
        !created.body.contains("tok_visa"),
        "the payment token is never echoed"
    );
    let correlation = created.header("x-correlation-id").expect("correlation id");
    assert_eq!(order["correlation_id"], correlation);

    let read = h.get_order(&id).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json(), order, "GET returns what POST stored");
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_problems() {
    let h = Harness::start().await;
    let unknown = h.get_order(&uuid::Uuid::new_v4().to_string()).await;
    unknown.assert_problem(404, "not-found");
    let malformed = h.get_order("not-an-id").await;
    malformed.assert_problem(404, "not-found");
}

#[tokio::test]
async fn a_client_correlation_id_is_kept() {
    let h = Harness::start().await;
    let request = http::Request::builder()
        .method("POST")
        .uri("/orders")
        .header("content-type", "application/json")
        .header("idempotency-key", new_key())
        .header("x-correlation-id", "checkout-42")
        .body(lambda_http::Body::from(order_body().to_string()))
        .unwrap();
    let created = h.send(request).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("x-correlation-id"), Some("checkout-42"));
    assert_eq!(created.json()["correlation_id"], "checkout-42");
}
