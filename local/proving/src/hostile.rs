//! Message bodies no consumer can ever process, one of each kind an attacker or a buggy
//! producer could send. The delivery tests and the reliability runs send them to the
//! consumer queues: each must end in the queue's DLQ with its reason, never block its batch.
//!
//! Bodies that are not UTF-8 cannot reach a consumer: SQS accepts only Unicode text and the
//! Lambda event is JSON, so the nearest case is text that is not JSON at all.

use serde_json::{Value, json};

/// One hostile body and the reason its consumer must give for dead-lettering it.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// What is wrong with it, for messages.
    pub name: &'static str,
    /// The message body.
    pub body: String,
    /// The start of the `dead_letter_reason` the consumer must give.
    pub reason: &'static str,
}

/// An envelope of `event_type` at schema `version` with `payload`, for one new order.
pub fn envelope(event_type: &str, version: Value, payload: Value) -> String {
    json!({
        "id": uuid::Uuid::new_v4(), "type": event_type, "version": version,
        "occurred_at": "2026-11-24T12:00:00Z", "correlation_id": "hostile",
        "order_id": uuid::Uuid::new_v4(), "payload": payload
    })
    .to_string()
}

/// A valid `OrderPlaced` payload (an empty order for 1.00 EUR).
pub fn order_placed_payload() -> Value {
    json!({"customer_id": "cust-4711", "items": [],
        "total": {"amount_minor": 100, "currency": "EUR"}})
}

/// Every kind of hostile body: huge, deeply nested, wrong types, not JSON, an unknown event
/// type, a future schema version, an invalid payload.
pub fn bodies() -> Vec<Hostile> {
    let good_payload = order_placed_payload();
    vec![
        Hostile {
            name: "huge",
            body: json!({"padding": "A".repeat(200 * 1024)}).to_string(),
            reason: "malformed envelope",
        },
        Hostile {
            name: "nested",
            body: format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),
            reason: "malformed envelope",
        },
        Hostile {
            name: "wrong types",
            body: envelope("OrderPlaced", json!("one"), good_payload.clone()),
            reason: "malformed envelope",
        },
        Hostile {
            name: "not JSON",
            body: "\u{FFFD}\u{7F} definitely not json".to_owned(),
            reason: "malformed envelope",
        },
        Hostile {
            name: "unknown type",
            body: envelope("OrderTeleported", json!(1), json!({})),
            reason: "unknown event type",
        },
        Hostile {
            name: "future version",
            body: envelope("OrderPlaced", json!(99), good_payload),
            reason: "unsupported schema version",
        },
        Hostile {
            name: "bad payload",
            body: envelope("OrderPlaced", json!(1), json!({"customer_id": 5})),
            reason: "invalid OrderPlaced payload",
        },
    ]
}
