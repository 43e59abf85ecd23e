//! At-least-once delivery: duplicates, poison messages and events out of order.

use aws_adapters::REASON_ATTRIBUTE;
use aws_sdk_sqs::types::MessageAttributeValue;
use integration_tests::{Harness, new_key, notification_kinds, order_with};
use serde_json::{Value, json};

/// A consumer's queue and its dead-letter queue, e.g. for "Payment".
fn queue_and_dlq(h: &Harness, consumer: &str) -> (String, String) {
    let url = |id: String| h.stack.queue_url(&id).unwrap().to_string();
    (
        url(format!("{consumer}Queue")),
        url(format!("{consumer}DeadLetterQueue")),
    )
}

async fn place(h: &Harness, body: &Value) -> String {
    let created = h.post_order(body, Some(&new_key())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["order_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_event_delivered_twice_still_has_one_effect() {
    let h = Harness::start().await;
    let consumers = h.consumers().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;
    let notifications = h.watch_notifications().await;
    // The relay publishes every batch twice, as a relay retried after a lost ack would:
    // every consumer queue receives two copies of every event.
    let mut functions = h.functions(&consumers);
    let relay = functions["EventRelayFunction"].clone();
    functions.insert(
        "EventRelayFunction".into(),
        std::sync::Arc::new(lambda_host::invoke::from_fn(move |event: Value| {
            let relay = relay.clone();
            async move {
                relay.invoke(event.clone()).await?;
                relay.invoke(event).await
            }
        })),
    );
    let mut pipeline = lambda_host::pipeline::Pipeline::new(&h.sdk, &h.stack, &functions);

    let id = place(&h, &order_with(&[("SKU-MUG", 3)], "tok_visa")).await;
    h.settle(&mut pipeline).await;

    assert_eq!(h.status_of(&id).await, "CONFIRMED");
    assert_eq!(h.ledger("charge", &id).await.len(), 1, "one charge");
    assert_eq!(
        h.stock(&consumers, "SKU-MUG").await,
        Some(7),
        "one reservation"
    );
    let sent = h.drain(&notifications).await;
    assert_eq!(
        notification_kinds(&sent, &id),
        ["order_confirmed", "order_received"],
        "one notification per event"
    );
}

#[tokio::test]
async fn two_copies_in_one_batch_charge_once() {
    let h = Harness::start().await;
    let (mut pipeline, consumers) = h.pipeline().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;
    let placed = h.subscribe_queue("placed-copy", &["OrderPlaced"]).await;
    let id = place(&h, &order_with(&[("SKU-MUG", 1)], "tok_visa")).await;
    let mut relay = h.relay_poller();
    h.relay_until_idle(&mut relay).await;
    let body = h.receive(&placed, 1).await[0].body.clone().unwrap();

    // The same OrderPlaced twice in one batch, straight into payment.
    let record = |message_id: &str| {
        json!({"messageId": message_id, "receiptHandle": "r", "body": body, "attributes": {},
               "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
    };
    let functions = h.functions(&consumers);
    let response = functions["PaymentFunction"]
        .invoke(json!({"Records": [record("copy-1"), record("copy-2")]}))
        .await
        .unwrap();
    // Both copies may call the provider, under the one key derived from the order, and
    // get its one charge back; one may be told to retry (a conflicting transaction);
    // never a second charge.
    for failure in response["batchItemFailures"].as_array().unwrap() {
        assert!(failure["itemIdentifier"] == "copy-1" || failure["itemIdentifier"] == "copy-2");
    }
    h.settle(&mut pipeline).await;
    assert_eq!(h.ledger("charge", &id).await.len(), 1);
    assert_eq!(h.status_of(&id).await, "CONFIRMED");
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dlq_with_its_reason_and_blocks_nothing() {
    let (logs, _guard) = integration_tests::CapturedLogs::install();
    let h = Harness::start().await;
    let (mut pipeline, _consumers) = h.pipeline().await;
    let notifications = h.watch_notifications().await;
    let (queue, dlq) = queue_and_dlq(&h, "Notification");

    // Nine good OrderPlaced events and one poison message in the same queue.
    let mut order_ids = Vec::new();
    for i in 0..9 {
        let order_id = uuid::Uuid::new_v4().to_string();
        let envelope = json!({
            "id": uuid::Uuid::new_v4(), "type": "OrderPlaced", "version": 1,
            "occurred_at": "2026-11-24T12:00:00Z", "correlation_id": format!("poison-test-{i}"),
            "order_id": order_id,
            "payload": {"customer_id": "cust-4711", "items": [],
                        "total": {"amount_minor": 100, "currency": "EUR"}}
        });
        h.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(envelope.to_string())
            .send()
            .await
            .unwrap();
        order_ids.push(order_id);
    }
    h.sqs
        .send_message()
        .queue_url(&queue)
        .message_body("{\"type\": \"OrderPlaced\", \"this is\": \"not an envelope\"")
        .message_attributes(
            "type",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("OrderPlaced")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    h.settle(&mut pipeline).await;

    let sent = h.drain(&notifications).await;
    for id in &order_ids {
        assert_eq!(
            notification_kinds(&sent, id),
            ["order_received"],
            "order {id}"
        );
    }
    let dead = h.drain(&dlq).await;
    assert_eq!(dead.len(), 1, "only the poison message is dead-lettered");
    let reason = dead[0].message_attributes.as_ref().unwrap()[REASON_ATTRIBUTE]
        .string_value()
        .unwrap()
        .to_string();
    assert!(reason.contains("malformed envelope"), "{reason}");
    assert!(h.drain(&queue).await.is_empty(), "nothing left behind");

    let poison_id = dead[0].message_attributes.as_ref().unwrap()
        [aws_adapters::ORIGINAL_ID_ATTRIBUTE]
        .string_value()
        .unwrap()
        .to_string();
    let logged = logs.lines().into_iter().any(|line| {
        line["level"] == "ERROR"
            && line["message_id"] == poison_id.as_str()
            && line["reason"]
                .as_str()
                .is_some_and(|r| r.contains("malformed envelope"))
    });
    assert!(logged, "the reason is logged at ERROR with the message id");
}

#[tokio::test]
async fn events_out_of_order_never_move_an_order_backwards() {
    let h = Harness::start().await;
    let (mut pipeline, consumers) = h.pipeline().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;
    h.seed_stock(&consumers, "SKU-RARE", 0).await;
    let succeeded = h
        .subscribe_queue("succeeded-watch", &["PaymentSucceeded"])
        .await;
    let refused = h
        .subscribe_queue("inventory-failed-copy", &["InventoryFailed"])
        .await;

    let cancelled = place(&h, &order_with(&[("SKU-RARE", 1)], "tok_visa")).await;
    let confirmed = place(&h, &order_with(&[("SKU-MUG", 1)], "tok_visa")).await;
    h.settle(&mut pipeline).await;
    assert_eq!(h.status_of(&cancelled).await, "CANCELLED");
    assert_eq!(h.status_of(&confirmed).await, "CONFIRMED");

    // A late PaymentSucceeded for the cancelled order (re-sent under a new event id)...
    let late_payment = h
        .drain(&succeeded)
        .await
        .into_iter()
        .map(|m| m.body.unwrap())
        .find(|b| b.contains(&cancelled))
        .unwrap();
    let mut late_payment: Value = serde_json::from_str(&late_payment).unwrap();
    late_payment["id"] = json!(uuid::Uuid::new_v4());
    // ...and a stray InventoryFailed for the confirmed order.
    let mut stray_failure: Value =
        serde_json::from_str(h.drain(&refused).await[0].body().unwrap()).unwrap();
    stray_failure["id"] = json!(uuid::Uuid::new_v4());
    stray_failure["order_id"] = json!(confirmed);
    for (queue, body) in [
        ("InventoryQueue", late_payment),
        ("PaymentQueue", stray_failure),
    ] {
        h.sqs
            .send_message()
            .queue_url(h.stack.queue_url(queue).unwrap())
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
    h.settle(&mut pipeline).await;

    assert_eq!(
        h.status_of(&cancelled).await,
        "CANCELLED",
        "no way back to CONFIRMED"
    );
    assert_eq!(
        h.status_of(&confirmed).await,
        "CONFIRMED",
        "no cancellation after confirmation"
    );
    assert_eq!(
        h.stock(&consumers, "SKU-MUG").await,
        Some(9),
        "nothing more reserved"
    );
    assert!(
        h.ledger("refund", &confirmed).await.is_empty(),
        "no refund of a confirmed order"
    );
}

/// Hostile bodies (`proving::hostile`), each in the same batch as a good event: every one
/// ends in the DLQ with the reason it can never be processed, and the good event is
/// handled regardless.
#[tokio::test]
async fn hostile_bodies_end_in_the_dlq_with_their_reasons_and_block_nothing() {
    let h = Harness::start().await;
    let (mut pipeline, _consumers) = h.pipeline().await;
    let notifications = h.watch_notifications().await;
    let (queue, dlq) = queue_and_dlq(&h, "Notification");
    let good = proving::hostile::envelope(
        "OrderPlaced",
        json!(1),
        proving::hostile::order_placed_payload(),
    );
    let good_order = serde_json::from_str::<Value>(&good).unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hostile = proving::hostile::bodies();
    for body in std::iter::once(&good).chain(hostile.iter().map(|h| &h.body)) {
        h.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    h.settle(&mut pipeline).await;

    let sent = h.drain(&notifications).await;
    assert_eq!(notification_kinds(&sent, &good_order), ["order_received"]);
    let dead = h.drain(&dlq).await;
    let reason_of = |message: &aws_sdk_sqs::types::Message| {
        message.message_attributes.as_ref().unwrap()[REASON_ATTRIBUTE]
            .string_value()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        dead.len(),
        hostile.len(),
        "every hostile body, once: {:?}",
        dead.iter().map(reason_of).collect::<Vec<_>>()
    );
    for proving::hostile::Hostile { name, body, reason } in &hostile {
        let message = dead
            .iter()
            .find(|m| m.body() == Some(body.as_str()))
            .unwrap_or_else(|| panic!("{name} is in the DLQ unchanged"));
        let given = reason_of(message);
        assert!(given.contains(reason), "{name}: {given}");
    }
    assert!(h.drain(&queue).await.is_empty(), "nothing left behind");
}

/// The redrive tool (`make redrive`): it lists a dead letter with its reason without
/// taking it, and moves it back to its queue, unchanged but for the dead-letter
/// attributes (were it to fail again, it would get a fresh reason).
#[tokio::test]
async fn redrive_lists_dead_letters_with_reasons_and_moves_them_back() {
    let h = Harness::start().await;
    let (mut pipeline, _consumers) = h.pipeline().await;
    let (queue, dlq) = queue_and_dlq(&h, "Payment");
    let body = json!({"id": uuid::Uuid::new_v4(), "type": "OrderTeleported", "version": 1,
        "occurred_at": "2026-11-24T12:00:00Z", "correlation_id": "redrive",
        "order_id": uuid::Uuid::new_v4(), "payload": {}})
    .to_string();
    h.sqs
        .send_message()
        .queue_url(&queue)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    h.settle(&mut pipeline).await;

    let letters = proving::redrive::list(&h.sqs, &dlq).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].body, body);
    let reason = letters[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("unknown event type"), "{reason}");
    assert_eq!(
        proving::redrive::list(&h.sqs, &dlq).await.unwrap().len(),
        1,
        "listing takes nothing"
    );

    let moved = proving::redrive::move_back(&h.sqs, &dlq, &queue)
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert!(
        proving::redrive::list(&h.sqs, &dlq)
            .await
            .unwrap()
            .is_empty()
    );
    let back = h.drain(&queue).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body(), Some(body.as_str()));
    assert!(
        back[0]
            .message_attributes
            .as_ref()
            .is_none_or(|a| !a.contains_key(REASON_ATTRIBUTE)),
        "the old reason does not travel back"
    );
}

/// Visible and in-flight messages of a queue.
async fn depth(h: &Harness, queue_url: &str) -> (u64, u64) {
    let depth = lambda_host::queues::depth(&h.sqs, queue_url).await.unwrap();
    (depth.waiting, depth.in_flight)
}

/// A DLQ holds more than one receive's worth (SQS gives at most 10 per receive): the
/// redrive tool lists every message, each once, and leaves them all visible, as it
/// found them.
#[tokio::test]
async fn redrive_lists_every_dead_letter_once_however_many_there_are() {
    let h = Harness::start().await;
    let (_queue, dlq) = queue_and_dlq(&h, "Payment");
    let mut sent: Vec<String> = (0..25).map(|i| format!("dead letter {i}")).collect();
    for body in &sent {
        h.sqs
            .send_message()
            .queue_url(&dlq)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let letters = proving::redrive::list(&h.sqs, &dlq).await.unwrap();

    let mut listed: Vec<String> = letters.iter().map(|l| l.body.clone()).collect();
    listed.sort();
    sent.sort();
    assert_eq!(listed, sent, "every message, each once");
    let ids: std::collections::BTreeSet<&str> =
        letters.iter().map(|l| l.message_id.as_str()).collect();
    assert_eq!(ids.len(), 25);
    // Left as it was: all visible again, none taken.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while depth(&h, &dlq).await != (25, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the listed messages are not all visible again: {:?}",
            depth(&h, &dlq).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        proving::redrive::list(&h.sqs, &dlq).await.unwrap().len(),
        25
    );
}

/// Moving dead letters back is only to the queue they came from: a target whose redrive
/// policy does not name this DLQ is refused, naming both queues, and nothing moves.
#[tokio::test]
async fn redrive_refuses_to_move_dead_letters_to_a_queue_that_is_not_their_source() {
    let h = Harness::start().await;
    let (payment_queue, payment_dlq) = queue_and_dlq(&h, "Payment");
    let (notification_queue, _) = queue_and_dlq(&h, "Notification");
    h.sqs
        .send_message()
        .queue_url(&payment_dlq)
        .message_body("a payment event")
        .send()
        .await
        .unwrap();

    // Another consumer's queue, and the DLQ itself (it has no redrive policy).
    for wrong in [&notification_queue, &payment_dlq] {
        let refused = proving::redrive::move_back(&h.sqs, &payment_dlq, wrong)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, proving::redrive::RedriveError::NotTheSource { .. }),
            "{refused:?}"
        );
        let said = refused.to_string();
        assert!(
            said.contains(&payment_dlq) && said.contains(wrong.as_str()),
            "{said}"
        );
    }

    let letters = proving::redrive::list(&h.sqs, &payment_dlq).await.unwrap();
    assert_eq!(letters.len(), 1, "nothing moved: {letters:?}");
    assert!(h.drain(&notification_queue).await.is_empty());
    assert!(h.drain(&payment_queue).await.is_empty());
}

/// The redrive tool's listing escapes what untrusted senders wrote: a body that would
/// clear the screen and return the cursor prints as visible escapes.
#[tokio::test]
async fn redrive_describes_a_hostile_body_with_its_control_characters_escaped() {
    let h = Harness::start().await;
    let (_queue, dlq) = queue_and_dlq(&h, "Payment");
    h.sqs
        .send_message()
        .queue_url(&dlq)
        .message_body("café\u{1b}[2J\rall good")
        .send()
        .await
        .unwrap();

    let letters = proving::redrive::list(&h.sqs, &dlq).await.unwrap();

    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].body, "café\u{1b}[2J\rall good", "kept unchanged");
    let shown = letters[0].describe();
    assert!(!shown.contains(['\u{1b}', '\r']), "{shown:?}");
    assert!(shown.ends_with(r"body: café\u{1b}[2J\rall good"), "{shown}");
}

/// A message a consumer forwarded is listed by the id the consumer's ERROR line names
/// (its id in the queue it failed in), not by the DLQ copy's own id, and as forwarded at
/// once with its reason; the listing's own receive is not shown as a retry.
#[tokio::test]
async fn redrive_lists_a_forwarded_letter_by_the_id_its_error_line_names() {
    let h = Harness::start().await;
    let (mut pipeline, _consumers) = h.pipeline().await;
    let (queue, dlq) = queue_and_dlq(&h, "Payment");
    let sent = h
        .sqs
        .send_message()
        .queue_url(&queue)
        .message_body(r#"{"type": "OrderPlaced", "version": 1"#)
        .send()
        .await
        .unwrap();
    // The id payment is handed, and logs at ERROR as `message_id`.
    let original = sent.message_id.unwrap();
    h.settle(&mut pipeline).await;

    let letters = proving::redrive::list(&h.sqs, &dlq).await.unwrap();

    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.original_id.as_deref(), Some(original.as_str()));
    assert_ne!(
        letter.message_id, original,
        "the DLQ copy has an id of its own"
    );
    let shown = letter.describe();
    assert!(
        shown.starts_with(&format!(
            "original id {original}  (the id its ERROR log line names)\n"
        )),
        "{shown}"
    );
    assert!(!shown.contains(&letter.message_id), "{shown}");
    assert!(
        shown.contains(
            "\n    forwarded at once by the function that failed on it, reason: malformed envelope"
        ),
        "{shown}"
    );
    assert!(!shown.contains("received"), "no retries to count: {shown}");
}

/// A message the redrive policy moved (received `maxReceiveCount` times, never deleted)
/// has no reason and keeps its id; the listing counts the receives before it, not its
/// own, and a later listing counts the earlier one.
#[tokio::test]
async fn redrive_counts_the_receives_before_the_listing_of_a_letter_the_redrive_policy_moved() {
    let h = Harness::start().await;
    let (queue, dlq) = queue_and_dlq(&h, "Payment");
    let policy = h
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy]
        .clone();
    let max_receives = serde_json::from_str::<Value>(&policy).unwrap()["maxReceiveCount"]
        .as_u64()
        .unwrap();
    let sent = h
        .sqs
        .send_message()
        .queue_url(&queue)
        .message_body("a payment event whose consumer keeps failing")
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();
    // Received and never deleted, as by a consumer that keeps failing, until the redrive
    // policy moves it (on the receive after the last one it allows).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while depth(&h, &dlq).await.0 == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never moved to the DLQ"
        );
        h.sqs
            .receive_message()
            .queue_url(&queue)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }

    let letters = proving::redrive::list(&h.sqs, &dlq).await.unwrap();

    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!((&letter.reason, &letter.original_id), (&None, &None));
    assert_eq!(
        letter.message_id, sent,
        "the policy moves the message itself"
    );
    assert_eq!(
        letter.received_before,
        Some(max_receives),
        "its receives in its queue, without the listing's own"
    );
    let shown = letter.describe();
    assert!(
        shown.starts_with(&format!("message id {sent}\n")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "\n    no reason: moved by the redrive policy after too many receives (or sent \
             here by hand); received {max_receives} time(s) before this listing\n"
        )),
        "{shown}"
    );
    let again = proving::redrive::list(&h.sqs, &dlq).await.unwrap();
    assert_eq!(
        again[0].received_before,
        Some(max_receives + 1),
        "the first listing was a receive too"
    );
}
