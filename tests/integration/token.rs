//! The card token stays with payment. create-order stores it on the order's item, payment
//! reads it there, and the write that settles the payment deletes it; it is never in an
//! event, so it is in no outbox row, no queue, no DLQ, no `make redrive` printout, no API
//! answer and no log line. These tests place real orders through the whole pipeline and
//! then look everywhere.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use aws_adapters::tables::{ORDER_SK, OUTBOX_SK_PREFIX, PAYMENT_TOKEN, order_pk};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use domain::events::{Envelope, EventType};
use domain::ids::OrderId;
use integration_tests::{CapturedLogs, DEADLINE, Harness, new_key, order_with};
use lambda_host::pipeline::Pipeline;
use serde_json::Value;

/// The approved card (the demo's happy orders) and the declined one (the demo's
/// `tok_decline`, see `events/demo/scenarios.json`): neither may turn up anywhere.
const TOKENS: [&str; 2] = ["tok_visa", "tok_decline"];

/// Fails if `text` holds a card token, naming where it was found.
fn assert_no_token(place: &str, text: &str) {
    for token in TOKENS {
        assert!(
            !text.contains(token),
            "{place} holds the card token {token}: {text}"
        );
    }
}

type Item = HashMap<String, AttributeValue>;

/// The order's item as stored, every attribute included.
async fn order_item(h: &Harness, id: &str) -> Item {
    let order_id = OrderId::parse(id).expect("an order id");
    h.dynamodb
        .get_item()
        .table_name(h.stack.table_name("OrdersTable").expect("table"))
        .key("pk", AttributeValue::S(order_pk(order_id)))
        .key("sk", AttributeValue::S(ORDER_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("the order is stored")
}

/// Places `body` with a fresh key, checks that neither the 201 nor its replay carries the
/// token, and returns the order id.
async fn place(h: &Harness, body: &Value) -> String {
    let key = new_key();
    let created = h.post_order(body, Some(&key)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_no_token("the 201 answer", &created.body);
    let replayed = h.post_order(body, Some(&key)).await;
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_no_token("the replayed answer", &replayed.body);
    created.json()["order_id"]
        .as_str()
        .expect("order_id")
        .to_string()
}

/// Runs the pipeline until every order is in its expected status, polling the API, or
/// fails at the deadline naming the statuses it saw.
async fn until_final(h: &Harness, pipeline: &mut Pipeline, expected: &[(&str, &str)]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        h.settle(pipeline).await;
        let mut seen = Vec::new();
        for (id, _) in expected {
            seen.push(h.status_of(id).await);
        }
        let wanted: Vec<&str> = expected.iter().map(|(_, status)| *status).collect();
        if seen == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "orders {expected:?} still at {seen:?} at the deadline"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A happy order, a declined card and an out-of-stock order (charged, then refunded): the
/// token is on each order's item until payment settles it, then on none, and in no event,
/// queue, DLQ, outbox row, table, API answer or log line.
#[tokio::test]
async fn the_card_token_is_nowhere_but_on_the_pending_order() {
    let (logs, _guard) = CapturedLogs::install();
    let h = Harness::start().await;
    let (mut pipeline, consumers) = h.pipeline().await;
    h.seed_stock(&consumers, "SKU-MUG", 10).await;
    h.seed_stock(&consumers, "SKU-RARE", 1).await;
    let every_type: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let published = h.subscribe_queue("every-event-watch", &every_type).await;
    let notifications = h.watch_notifications().await;

    let happy = place(&h, &order_with(&[("SKU-MUG", 2)], "tok_visa")).await;
    let declined = place(&h, &order_with(&[("SKU-MUG", 1)], "tok_decline")).await;
    let short = place(&h, &order_with(&[("SKU-RARE", 3)], "tok_visa")).await;

    // Placed, not yet paid: the token is on the item, for payment, and GET does not show it.
    for (id, token) in [
        (&happy, "tok_visa"),
        (&declined, "tok_decline"),
        (&short, "tok_visa"),
    ] {
        let item = order_item(&h, id).await;
        assert_eq!(
            item.get(PAYMENT_TOKEN).and_then(|v| v.as_s().ok()),
            Some(&token.to_string()),
            "order {id} keeps its token while PENDING"
        );
        let read = h.get_order(id).await;
        assert_eq!(read.status, 200);
        assert_eq!(read.json()["status"], "PENDING");
        assert_no_token("GET of a pending order", &read.body);
    }

    until_final(
        &h,
        &mut pipeline,
        &[
            (happy.as_str(), "CONFIRMED"),
            (declined.as_str(), "PAYMENT_FAILED"),
            (short.as_str(), "CANCELLED"),
        ],
    )
    .await;

    // Everything the topic carried: 4 events for the happy order, 2 for the declined one,
    // 5 for the cancelled one.
    let messages = h.receive(&published, 11).await;
    let ids: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            let body = m.body.as_deref().unwrap_or_default();
            assert_no_token("a published event", body);
            assert_no_token(
                "a message's attributes",
                &format!("{:?}", m.message_attributes),
            );
            Envelope::decode(body).expect("an event").id.to_string()
        })
        .collect();
    assert_eq!(ids.len(), 11, "every event, once");
    for message in h.drain(&notifications).await {
        assert_no_token(
            "a customer notification",
            message.body().unwrap_or_default(),
        );
    }

    // An OrderPlaced that ends in a DLQ (here: delivered to a consumer that does not
    // handle it), as `make redrive` would show it.
    let placed = messages
        .iter()
        .find(|m| {
            m.body()
                .is_some_and(|b| b.contains(&happy) && b.contains("\"OrderPlaced\""))
        })
        .and_then(|m| m.body.clone())
        .expect("the happy order's OrderPlaced");
    h.sqs
        .send_message()
        .queue_url(h.stack.queue_url("InventoryQueue").expect("queue"))
        .message_body(placed)
        .message_attributes(
            "type",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("OrderPlaced")
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("send");
    h.settle(&mut pipeline).await;

    // Every queue and DLQ of the template, peeked at without taking anything.
    let mut dead_letters = 0;
    for (queue, url) in h.stack.queues() {
        let letters = proving::redrive::list(&h.sqs, &url).await.expect("list");
        for letter in &letters {
            assert_no_token(&format!("{queue}'s message"), &letter.body);
            assert_no_token(&format!("{queue}'s redrive printout"), &letter.describe());
            assert_no_token(
                &format!("{queue}'s dead-letter reason"),
                letter.reason.as_deref().unwrap_or_default(),
            );
        }
        if queue == "InventoryDeadLetterQueue" {
            dead_letters = letters.len();
        }
    }
    assert_eq!(
        dead_letters, 1,
        "the OrderPlaced copy is in the inventory DLQ"
    );

    // Every outbox row and every order item; every other table, whole.
    let orders = h.items("OrdersTable").await;
    let sk = |item: &Item| {
        item.get("sk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let outbox: Vec<&Item> = orders
        .iter()
        .filter(|item| sk(item).starts_with(OUTBOX_SK_PREFIX))
        .collect();
    assert_eq!(outbox.len(), 11, "one outbox row per event");
    let order_items: Vec<&Item> = orders.iter().filter(|item| sk(item) == ORDER_SK).collect();
    assert_eq!(order_items.len(), 3);
    for item in &order_items {
        assert!(
            !item.contains_key(PAYMENT_TOKEN),
            "the settling write removed it: {item:?}"
        );
    }
    for item in &orders {
        assert_no_token("an orders-table item", &format!("{item:?}"));
    }
    for table in ["IdempotencyTable", "PaymentsTable", "InventoryTable"] {
        let stored = h.items(table).await;
        assert!(!stored.is_empty(), "{table} has items to look at");
        for item in stored {
            assert_no_token(&format!("a {table} item"), &format!("{item:?}"));
        }
    }

    // The API, after the fact.
    for id in [&happy, &declined, &short] {
        let read = h.get_order(id).await;
        assert_eq!(read.status, 200);
        assert_no_token("GET of a settled order", &read.body);
    }

    // The functions' log lines: there are some, with a charge among them, and none with
    // a token.
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l["message"] == "payment succeeded"),
        "payment logged its charges"
    );
    for line in &lines {
        assert_no_token("a log line", &line.to_string());
    }
}
