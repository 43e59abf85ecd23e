//! What DynamoDB does under contention and the emulator, which serialises DynamoDB, never
//! would on its own: transactions cancelled because another one touches the same item,
//! transactions cancelled by throttling. The emulator's fault injector produces them
//! (`emulator::DynamoDbFault`) for requests the functions sign, and each test
//! checks what a user would see: the API's answer, the stored order, the stock, the DLQ.

use aws_adapters::tables;
use chrono::Utc;
use domain::events::{Envelope, Event, InventoryFailed};
use domain::ids::{CorrelationId, CustomerId, OrderId, Sku};
use domain::money::{Currency, Money};
use domain::ports::{ReserveOutcome, StockStore};
use emulator::DynamoDbFault;
use integration_tests::{Harness, new_key, notification_kinds, order_body, order_with};
use serde_json::{Value, json};

async fn place(h: &Harness, body: &Value) -> String {
    let created = h.post_order(body, Some(&new_key())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["order_id"].as_str().unwrap().to_string()
}

/// An SQS event holding these bodies, as Lambda hands it to a consumer.
fn sqs_event(bodies: &[&str]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({"messageId": format!("m-{i}"), "receiptHandle": "r", "body": body,
                   "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
                   "awsRegion": "us-east-1"})
        })
        .collect();
    json!({ "Records": records })
}

/// Publishes what the outbox holds and returns the bodies of `event_type` published.
async fn published(h: &Harness, queue: &str, expected: usize) -> Vec<String> {
    let mut relay = h.relay_poller();
    h.relay_until_idle(&mut relay).await;
    h.receive(queue, expected)
        .await
        .into_iter()
        .map(|m| m.body.unwrap_or_default())
        .collect()
}

/// Concurrent requests with one key: on DynamoDB the losers' transactions are cancelled
/// with `TransactionConflict`. Throttling cancels a transaction too. Before, both were
/// read as permanent failures: a 500, and the API's 5xx alarm.
#[tokio::test]
async fn a_conflicted_or_throttled_order_is_a_409_or_503_with_retry_after_never_a_500() {
    let h = Harness::start_signed_as_functions().await;
    let faults = h.emulator.faults();
    let key = new_key();

    faults
        .fail_next(DynamoDbFault::TransactionConflict, "CreateOrderFunction", 1)
        .await
        .unwrap();
    let conflicted = h.post_order(&order_body(), Some(&key)).await;
    match conflicted.status {
        409 => conflicted.assert_problem(409, "request-in-progress"),
        _ => conflicted.assert_problem(503, "service-unavailable"),
    };
    assert!(conflicted.header("retry-after").is_some(), "{conflicted:?}");

    faults
        .fail_next(
            DynamoDbFault::TransactionThrottled,
            "CreateOrderFunction",
            1,
        )
        .await
        .unwrap();
    let throttled = h.post_order(&order_body(), Some(&key)).await;
    throttled.assert_problem(503, "service-unavailable");
    assert!(throttled.header("retry-after").is_some(), "{throttled:?}");

    let placed = h.post_order(&order_body(), Some(&key)).await;
    assert_eq!(
        placed.status, 201,
        "the retry places the order: {}",
        placed.body
    );
    assert_eq!(
        h.count_items("OrdersTable", tables::ORDER_SK).await,
        1,
        "one order"
    );
}

/// A hot SKU: reservations for it conflict with each other. Before, each conflict handed
/// the message back to SQS for a visibility timeout out of its five receives; now the
/// invocation tries again after a short random pause, and the batch succeeds.
#[tokio::test]
async fn a_reservation_cancelled_by_contention_is_tried_again_within_the_invocation() {
    let h = Harness::start_signed_as_functions().await;
    let consumers = h.consumers().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;
    let placed_queue = h.subscribe_queue("placed", &["OrderPlaced"]).await;
    let paid_queue = h.subscribe_queue("paid", &["PaymentSucceeded"]).await;
    let functions = h.functions(&consumers);
    let id = place(&h, &order_with(&[("SKU-MUG", 3)], "tok_visa")).await;
    let placed = published(&h, &placed_queue, 1).await;
    functions["PaymentFunction"]
        .invoke(sqs_event(&[&placed[0]]))
        .await
        .unwrap();
    let paid = published(&h, &paid_queue, 1).await;

    h.emulator
        .faults()
        .fail_next(DynamoDbFault::TransactionConflict, "InventoryFunction", 3)
        .await
        .unwrap();
    let answer = functions["InventoryFunction"]
        .invoke(sqs_event(&[&paid[0]]))
        .await
        .unwrap();
    assert_eq!(
        answer["batchItemFailures"],
        json!([]),
        "handled in this invocation"
    );
    assert_eq!(h.status_of(&id).await, "CONFIRMED");
    assert_eq!(h.stock(&consumers, "SKU-MUG").await, Some(7));
    let injected = h.emulator.faults().injected().await.unwrap();
    assert_eq!(
        injected.get("transaction_conflict"),
        Some(&3),
        "{injected:?}"
    );
}

/// Storing a shortage cancelled by a conflict or throttling stored nothing. Before, any
/// cancellation read as "stored already": the message was acked, `InventoryFailed` never
/// written, and the customer stayed charged with no refund.
#[tokio::test]
async fn a_shortage_cancelled_by_contention_is_stored_not_dropped() {
    let h = Harness::start_signed_as_functions().await;
    let consumers = h.consumers().await;
    let order_id = OrderId::new();
    let now = Utc::now();
    let failed = Envelope::new(
        order_id,
        CorrelationId::parse("contention-test").unwrap(),
        now,
        Event::InventoryFailed(InventoryFailed {
            customer_id: CustomerId::parse("cust-0001").unwrap(),
            short_skus: vec![Sku::parse("SKU-MUG").unwrap()],
            charge_id: "ch_1".into(),
            amount: Money::new(1500, Currency::USD),
        }),
    );
    for fault in [
        DynamoDbFault::TransactionConflict,
        DynamoDbFault::TransactionThrottled,
    ] {
        h.emulator
            .faults()
            .fail_next(fault, "InventoryFunction", 1)
            .await
            .unwrap();
    }
    let outcome = consumers
        .inventory
        .stock_store()
        .record_shortage(
            order_id,
            &[Sku::parse("SKU-MUG").unwrap()],
            std::slice::from_ref(&failed),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ReserveOutcome::Short(vec![Sku::parse("SKU-MUG").unwrap()])
    );
    assert_eq!(
        h.count_items("OrdersTable", tables::OUTBOX_SK_PREFIX).await,
        1,
        "InventoryFailed is in the outbox, so payment refunds"
    );
}

/// Consumers claim an event by its id alone. Before, they hashed the event as their own
/// build re-serialised it, so during a canary (two builds) or after a schema change a
/// handled event's next copy read as "same id, different content" and went to the DLQ.
#[tokio::test]
async fn a_later_copy_of_a_handled_event_is_a_duplicate_whatever_its_build_wrote() {
    let h = Harness::start().await;
    let consumers = h.consumers().await;
    let functions = h.functions(&consumers);
    let notifications = h.watch_notifications().await;
    let placed_queue = h.subscribe_queue("placed", &["OrderPlaced"]).await;
    let id = place(&h, &order_body()).await;
    let body = published(&h, &placed_queue, 1).await.remove(0);
    // The same event as another build serialised it: here, a total written differently.
    let mut other: Value = serde_json::from_str(&body).unwrap();
    other["payload"]["total"]["amount_minor"] = json!(1);
    let other = other.to_string();
    assert_ne!(body, other);

    for copy in [&body, &other] {
        let answer = functions["NotificationFunction"]
            .invoke(sqs_event(&[copy]))
            .await
            .unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]));
    }
    let dlq = h
        .stack
        .queue_url("NotificationDeadLetterQueue")
        .unwrap()
        .to_string();
    assert!(h.drain(&dlq).await.is_empty(), "nothing dead-lettered");
    let sent = h.drain(&notifications).await;
    assert_eq!(
        notification_kinds(&sent, &id),
        ["order_received"],
        "sent once"
    );
}

/// Payment charges what the order table says the order costs, never what an event
/// carries: the event is only as trustworthy as whoever could publish it.
#[tokio::test]
async fn payment_charges_the_stored_total_not_the_events() {
    let h = Harness::start().await;
    let consumers = h.consumers().await;
    let functions = h.functions(&consumers);
    let placed_queue = h.subscribe_queue("placed", &["OrderPlaced"]).await;
    let created = h
        .post_order(&order_with(&[("SKU-MUG", 3)], "tok_visa"), Some(&new_key()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["order_id"].as_str().unwrap().to_string();
    let total = created.json()["total"]["amount_minor"].as_u64().unwrap();
    let body = published(&h, &placed_queue, 1).await.remove(0);
    let mut tampered: Value = serde_json::from_str(&body).unwrap();
    tampered["payload"]["total"]["amount_minor"] = json!(1);

    functions["PaymentFunction"]
        .invoke(sqs_event(&[&tampered.to_string()]))
        .await
        .unwrap();
    let charges = h.ledger("charge", &id).await;
    assert_eq!(charges.len(), 1);
    assert_eq!(
        charges[0]["amount_minor"].as_n().unwrap(),
        &total.to_string(),
        "the stored total was charged"
    );
    assert_eq!(h.status_of(&id).await, "PAID");
}

/// An approved charge whose status change keeps failing (DynamoDB throttling payment's
/// transaction through every try of the invocation) is not lost: the message is retried,
/// the order is still PENDING, and the retry finds the same charge at the provider (its
/// key is derived from the order) and records it. One charge, and the order is PAID.
#[tokio::test]
async fn a_charge_whose_status_change_failed_is_recorded_by_the_retry_charging_once() {
    let h = Harness::start_signed_as_functions().await;
    let consumers = h.consumers().await;
    let functions = h.functions(&consumers);
    let placed_queue = h.subscribe_queue("placed", &["OrderPlaced"]).await;
    let id = place(&h, &order_body()).await;
    let placed = published(&h, &placed_queue, 1).await.remove(0);

    h.emulator
        .faults()
        .fail_next(
            DynamoDbFault::TransactionThrottled,
            "PaymentFunction",
            aws_adapters::CONTENTION_ATTEMPTS,
        )
        .await
        .unwrap();
    let first = functions["PaymentFunction"]
        .invoke(sqs_event(&[&placed]))
        .await
        .unwrap();
    assert_eq!(
        first["batchItemFailures"],
        json!([{"itemIdentifier": "m-0"}]),
        "retried, not dead-lettered"
    );
    assert_eq!(h.status_of(&id).await, "PENDING");
    assert_eq!(h.ledger("charge", &id).await.len(), 1, "charged once");

    let retry = functions["PaymentFunction"]
        .invoke(sqs_event(&[&placed]))
        .await
        .unwrap();
    assert_eq!(retry["batchItemFailures"], json!([]));
    assert_eq!(h.status_of(&id).await, "PAID");
    assert_eq!(h.ledger("charge", &id).await.len(), 1, "still one charge");
}
