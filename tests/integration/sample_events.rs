//! The sample events in `events/` (used with `cargo lambda invoke --data-file`) are real
//! Lambda payloads that each function accepts and handles.

use std::path::PathBuf;

use integration_tests::Harness;
use local::invoke::Invoke;

fn sample(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn the_api_samples_are_api_gateway_proxy_events() {
    let h = Harness::start().await;
    let request = lambda_http::request::from_str(&sample("create-order.json")).unwrap();
    let created = h.send(request).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.header("x-correlation-id"),
        Some("sample-checkout-1")
    );

    let request = lambda_http::request::from_str(&sample("get-order.json")).unwrap();
    let missing = h.send(request).await;
    missing.assert_problem(404, "not-found");
    assert!(
        missing
            .body
            .contains("3f0c9a52-8a4e-4d61-b0a3-5b8f7e2d1c90")
    );
}

#[tokio::test]
async fn the_relay_sample_is_a_stream_batch_it_publishes() {
    let h = Harness::start().await;
    let queue = h.subscribe_queue("sample-watch", &["OrderPlaced"]).await;
    let event: serde_json::Value = serde_json::from_str(&sample("event-relay.json")).unwrap();
    let response = h.relay_function().invoke(event).await.unwrap();
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    let messages = h.receive(&queue, 1).await;
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0]
            .body
            .as_deref()
            .unwrap()
            .contains("sample-checkout-1")
    );
}

#[tokio::test]
async fn the_consumer_samples_are_sqs_batches_each_function_accepts() {
    let h = Harness::start().await;
    let notifications = h.watch_notifications().await;
    let consumers = h.consumers().await;
    let functions = h.functions(&consumers);
    for (function, file) in [
        ("PaymentFunction", "payment.json"),
        ("InventoryFunction", "inventory.json"),
        ("NotificationFunction", "notification.json"),
    ] {
        let event: serde_json::Value = serde_json::from_str(&sample(file)).unwrap();
        let response = functions[function].invoke(event).await.unwrap();
        assert_eq!(
            response["batchItemFailures"],
            serde_json::json!([]),
            "{function} with {file}"
        );
    }
    // The order in the samples does not exist, so payment and inventory leave it alone;
    // the confirmation notification is sent.
    let sent = h.drain(&notifications).await;
    assert_eq!(
        integration_tests::notification_kinds(&sent, "3f0c9a52-8a4e-4d61-b0a3-5b8f7e2d1c90"),
        ["order_confirmed"]
    );
}
