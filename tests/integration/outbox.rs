//! The transactional outbox: every stored order's OrderPlaced reaches the topic exactly
//! once, even when the path between storing and publishing breaks for a while.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

use domain::events::{Envelope, Event};
use integration_tests::{Harness, new_key, order_body};

#[tokio::test]
async fn order_placed_carries_the_envelope_and_the_api_correlation_id() {
    let h = Harness::start().await;
    let queue = h
        .subscribe_queue("order-placed-watch", &["OrderPlaced"])
        .await;
    let created = h.post_order(&order_body(), Some(&new_key())).await;
    assert_eq!(created.status, 201);
    let correlation = created.header("x-correlation-id").unwrap().to_string();
    let order_id = created.json()["order_id"].as_str().unwrap().to_string();

    let mut relay = h.relay_poller();
    h.relay_until_idle(&mut relay).await;
    let messages = h.receive(&queue, 1).await;
    assert_eq!(messages.len(), 1, "exactly one OrderPlaced");

    let message = &messages[0];
    let attributes = message.message_attributes.as_ref().expect("attributes");
    assert_eq!(
        attributes["type"].string_value(),
        Some("OrderPlaced"),
        "the type attribute subscriptions filter on"
    );
    assert_eq!(
        attributes["correlation_id"].string_value(),
        Some(correlation.as_str())
    );
    let body = message.body.as_deref().unwrap();
    let wire: serde_json::Value = serde_json::from_str(body).unwrap();
    for field in [
        "id",
        "type",
        "version",
        "occurred_at",
        "correlation_id",
        "order_id",
        "payload",
    ] {
        assert!(wire.get(field).is_some(), "{field} in {wire}");
    }
    let envelope = Envelope::decode(body).expect("a valid envelope");
    assert_eq!(envelope.order_id.to_string(), order_id);
    assert_eq!(envelope.correlation_id.as_str(), correlation);
    let Event::OrderPlaced(placed) = envelope.event else {
        panic!("an OrderPlaced payload");
    };
    assert_eq!(placed.total.amount_minor, 4499);
    // The card token stays on the stored order: never on the topic.
    assert_eq!(placed.legacy_payment_token(), None);
    assert!(!body.contains("tok_visa"), "{body}");
}

#[tokio::test]
async fn events_survive_an_unavailable_topic_and_arrive_once() {
    let h = Harness::start().await;
    let topic = h.topic_arn();

    // The topic goes away (an outage, a botched deploy)...
    h.sns.delete_topic().topic_arn(&topic).send().await.unwrap();
    let mut order_ids = Vec::new();
    for _ in 0..3 {
        let created = h.post_order(&order_body(), Some(&new_key())).await;
        assert_eq!(created.status, 201, "the API does not depend on the topic");
        order_ids.push(created.json()["order_id"].as_str().unwrap().to_string());
    }
    // ...so the relay fails, and the records stay in the stream for a retry, however
    // long the outage: more attempts than the mapping's old limit of 10, after which
    // the records went to the failure destination and their orders stayed PENDING.
    let mut relay = h.relay_poller();
    let function = h.relay_function();
    for attempt in 1..=12 {
        let report = relay.poll_once(&function).await.unwrap();
        assert!(
            report.delivered > 0,
            "attempt {attempt}: the relay was invoked: {report:?}"
        );
        assert!(
            report.pending_retry > 0 && report.sent_to_failure_destination == 0,
            "attempt {attempt}: the failed records wait for a retry: {report:?}"
        );
    }

    // The topic comes back; the retries publish every event exactly once.
    let recreated = h
        .sns
        .create_topic()
        .name(topic.rsplit(':').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(recreated.topic_arn(), Some(topic.as_str()));
    let queue = h.subscribe_queue("after-outage", &["OrderPlaced"]).await;
    h.relay_until_idle(&mut relay).await;

    let messages = h.receive(&queue, 3).await;
    let mut per_order: HashMap<String, usize> = HashMap::new();
    for message in &messages {
        let envelope = Envelope::decode(message.body.as_deref().unwrap()).unwrap();
        *per_order.entry(envelope.order_id.to_string()).or_default() += 1;
    }
    for id in &order_ids {
        assert_eq!(per_order.get(id), Some(&1), "order {id}: {per_order:?}");
    }
    assert_eq!(messages.len(), 3);
}

#[tokio::test]
async fn orders_stored_while_the_relay_is_down_are_published_when_it_returns() {
    let h = Harness::start().await;
    let queue = h.subscribe_queue("late-relay", &["OrderPlaced"]).await;
    for _ in 0..5 {
        assert_eq!(
            h.post_order(&order_body(), Some(&new_key())).await.status,
            201
        );
    }
    // The relay only starts now, as after a crash between storing and publishing.
    let mut relay = h.relay_poller();
    h.relay_until_idle(&mut relay).await;
    let messages = h.receive(&queue, 5).await;
    assert_eq!(messages.len(), 5, "each stored order's event arrives once");
}

/// An outbox row that can never be published (a writer's bug) goes whole, with its
/// reason, to the relay's DLQ, and the events behind it are still published: with
/// retries unlimited, it would otherwise block its shard for the stream's 24 hours.
#[tokio::test]
async fn a_malformed_outbox_row_goes_whole_to_the_dlq_and_blocks_nothing() {
    let h = Harness::start().await;
    let queue = h.subscribe_queue("behind-broken", &["OrderPlaced"]).await;
    let table = h.stack.table_name("OrdersTable").unwrap().to_string();
    h.dynamodb
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("ORDER#broken".into()))
        .item("sk", AttributeValue::S("EVENT#broken-row".into()))
        .item("event_type", AttributeValue::S("OrderPlaced".into()))
        .send()
        .await
        .unwrap();
    let created = h.post_order(&order_body(), Some(&new_key())).await;
    assert_eq!(created.status, 201);

    let mut relay = h.relay_poller();
    h.relay_until_idle(&mut relay).await;

    assert_eq!(h.receive(&queue, 1).await.len(), 1, "the good event is out");
    let dlq = h
        .stack
        .queue_url("RelayDeadLetterQueue")
        .unwrap()
        .to_string();
    let dead = h.drain(&dlq).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let body = dead[0].body.as_deref().unwrap_or_default();
    assert!(body.contains("EVENT#broken-row"), "the row itself: {body}");
    let reason = dead[0]
        .message_attributes
        .as_ref()
        .and_then(|a| a.get(aws_adapters::REASON_ATTRIBUTE))
        .and_then(|v| v.string_value())
        .unwrap_or_default();
    assert!(reason.contains("malformed"), "{reason}");
}
