//! Bad input gets a clear problem+json 4xx, never a 5xx, and stores nothing.

use integration_tests::{Harness, new_key, order_body};
use lambda_http::Body;

fn post(content_type: &str, body: Body) -> lambda_http::Request {
    http::Request::builder()
        .method("POST")
        .uri("/orders")
        .header("content-type", content_type)
        .header("idempotency-key", new_key())
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn malformed_requests_are_rejected_with_the_reason() {
    let h = Harness::start().await;

    let not_json = h
        .send(post("application/json", Body::from("{\"customer_id\": ")))
        .await;
    let problem = not_json.assert_problem(400, "malformed-request");
    assert_eq!(problem["errors"][0]["rule"], "json_syntax");

    let wrong_type = h
        .send(post("text/plain", Body::from(order_body().to_string())))
        .await;
    wrong_type.assert_problem(415, "unsupported-media-type");

    let huge = format!(
        "{{\"customer_id\": \"{}\"}}",
        "x".repeat(create_order::MAX_BODY_BYTES)
    );
    h.send(post("application/json", Body::from(huge)))
        .await
        .assert_problem(413, "payload-too-large");

    let mut unknown_field = order_body();
    unknown_field["discount"] = 50.into();
    let response = h
        .send(post(
            "application/json",
            Body::from(unknown_field.to_string()),
        ))
        .await;
    let problem = response.assert_problem(400, "malformed-request");
    assert!(
        problem["detail"].as_str().unwrap().contains("discount"),
        "{problem}"
    );

    let mut latin1 = order_body().to_string().into_bytes();
    latin1.extend_from_slice(&[0xE9, 0xFF]);
    h.send(post("application/json", Body::from(latin1)))
        .await
        .assert_problem(400, "malformed-request");

    let mut wrong_type = order_body();
    wrong_type["items"][0]["quantity"] = "two".into();
    let response = h
        .send(post("application/json", Body::from(wrong_type.to_string())))
        .await;
    let problem = response.assert_problem(400, "malformed-request");
    assert_eq!(problem["errors"][0]["field"], "items[0].quantity");

    assert_eq!(h.count_items("OrdersTable", "").await, 0, "nothing stored");
}

#[tokio::test]
async fn every_broken_rule_is_listed_with_its_field() {
    let h = Harness::start().await;
    let mut body = order_body();
    body["customer_id"] = "bob".into();
    body["currency"] = "XXX".into();
    body["items"][0]["quantity"] = 101.into();
    body["items"][1]["sku"] = "SKU-MUG".into();
    let response = h.post_order(&body, Some(&new_key())).await;
    let problem = response.assert_problem(400, "validation-failed");
    let broken: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
            (
                e["field"].as_str().unwrap().to_string(),
                e["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("customer_id", "customer_id_format"),
        ("currency", "currency_allowed"),
        ("items[0].quantity", "range"),
        ("items", "unique_skus"),
    ] {
        assert!(
            broken.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} missing in {broken:?}"
        );
    }
    assert_eq!(h.count_items("OrdersTable", "").await, 0, "nothing stored");
}
