//! The saga end to end: API -> outbox -> relay -> SNS fan-out -> SQS -> payment,
//! inventory, notification, with the emulated event source mappings from template.yaml.

use domain::events::{Envelope, Event};
use integration_tests::{Harness, new_key, notification_kinds, order_with};

async fn place(h: &Harness, body: &serde_json::Value) -> String {
    let created = h.post_order(body, Some(&new_key())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["order_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_happy_order_is_confirmed_charged_once_and_notified_once_per_step() {
    let h = Harness::start().await;
    let (mut pipeline, consumers) = h.pipeline().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;
    h.seed_stock(&consumers, "SKU-TEE", 5).await;
    let notifications = h.watch_notifications().await;

    let id = place(
        &h,
        &order_with(&[("SKU-MUG", 2), ("SKU-TEE", 1)], "tok_visa"),
    )
    .await;
    h.settle(&mut pipeline).await;

    assert_eq!(h.status_of(&id).await, "CONFIRMED");
    assert_eq!(h.stock(&consumers, "SKU-MUG").await, Some(8));
    assert_eq!(h.stock(&consumers, "SKU-TEE").await, Some(4));
    assert_eq!(h.ledger("charge", &id).await.len(), 1, "one charge");
    assert!(h.ledger("refund", &id).await.is_empty(), "no refund");
    let sent = h.drain(&notifications).await;
    assert_eq!(
        notification_kinds(&sent, &id),
        ["order_confirmed", "order_received"]
    );
}

#[tokio::test]
async fn a_declined_card_fails_the_order_without_touching_stock() {
    let h = Harness::start().await;
    let (mut pipeline, consumers) = h.pipeline().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;
    let notifications = h.watch_notifications().await;

    let id = place(&h, &order_with(&[("SKU-MUG", 2)], "tok_decline")).await;
    h.settle(&mut pipeline).await;

    assert_eq!(h.status_of(&id).await, "PAYMENT_FAILED");
    assert_eq!(
        h.stock(&consumers, "SKU-MUG").await,
        Some(10),
        "stock untouched"
    );
    let charge = h.ledger("charge", &id).await;
    assert_eq!(charge[0]["status"].as_s().unwrap(), "DECLINED");
    let sent = h.drain(&notifications).await;
    assert_eq!(
        notification_kinds(&sent, &id),
        ["order_received", "payment_failed"],
        "one payment-failed notification (after the order-received one)"
    );
}

#[tokio::test]
async fn out_of_stock_cancels_and_refunds_naming_the_short_skus() {
    let h = Harness::start().await;
    let (mut pipeline, consumers) = h.pipeline().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;
    h.seed_stock(&consumers, "SKU-RARE", 1).await;
    let failures = h
        .subscribe_queue("inventory-failed-watch", &["InventoryFailed"])
        .await;
    let notifications = h.watch_notifications().await;

    let id = place(
        &h,
        &order_with(&[("SKU-MUG", 2), ("SKU-RARE", 3)], "tok_visa"),
    )
    .await;
    h.settle(&mut pipeline).await;

    assert_eq!(h.status_of(&id).await, "CANCELLED");
    assert_eq!(
        h.stock(&consumers, "SKU-MUG").await,
        Some(10),
        "nothing reserved"
    );
    assert_eq!(h.stock(&consumers, "SKU-RARE").await, Some(1));
    assert_eq!(h.ledger("charge", &id).await.len(), 1);
    let refunds = h.ledger("refund", &id).await;
    assert_eq!(refunds.len(), 1, "the charge was refunded once");
    assert_eq!(refunds[0]["amount_minor"].as_n().unwrap(), "5000");

    let failed = h.drain(&failures).await;
    assert_eq!(failed.len(), 1);
    let Event::InventoryFailed(failed) = Envelope::decode(failed[0].body().unwrap()).unwrap().event
    else {
        panic!("an InventoryFailed event");
    };
    let short: Vec<&str> = failed.short_skus.iter().map(|s| s.as_str()).collect();
    assert_eq!(short, ["SKU-RARE"]);
    let sent = h.drain(&notifications).await;
    assert_eq!(
        notification_kinds(&sent, &id),
        ["order_cancelled", "order_received"]
    );
}

#[tokio::test]
async fn a_transient_gateway_failure_is_retried_and_charges_once() {
    let h = Harness::start().await;
    let (mut pipeline, consumers) = h.pipeline().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;

    // The simulated provider times out twice for this token, then approves.
    let id = place(&h, &order_with(&[("SKU-MUG", 1)], "tok_flaky_2")).await;
    h.settle(&mut pipeline).await;

    assert_eq!(h.status_of(&id).await, "CONFIRMED");
    assert_eq!(h.ledger("charge", &id).await.len(), 1, "exactly one charge");
    assert_eq!(h.stock(&consumers, "SKU-MUG").await, Some(9));
}
