//! The event envelope every message carries, and one type per event.
//!
//! This module is the single place event shapes are defined: the relay publishes what
//! it finds in the outbox, and every consumer decodes with [`Envelope::decode`], which
//! says precisely why a message cannot be read (so it can be sent to a DLQ with that
//! reason instead of blocking its batch or vanishing).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CorrelationId, CustomerId, EventId, OrderId, Sku};
use crate::money::Money;
use crate::order::{Order, OrderItem, PaymentToken, Quantity};

/// The envelope schema version this code writes, and the newest it can read. A consumer
/// that meets a newer version rejects the message (to its DLQ) rather than guessing.
pub const SCHEMA_VERSION: u32 = 1;

/// The SNS message attribute that carries the event type; subscriptions filter on it so
/// each consumer only ever receives the events it handles.
pub const TYPE_ATTRIBUTE: &str = "type";

/// The SNS message attribute that carries the correlation id across services.
pub const CORRELATION_ATTRIBUTE: &str = "correlation_id";

/// Every event type in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// An order was accepted: payment should charge it.
    OrderPlaced,
    /// The charge went through: inventory should reserve stock.
    PaymentSucceeded,
    /// The charge was declined: the order ends as PAYMENT_FAILED.
    PaymentFailed,
    /// Every line's stock was reserved.
    InventoryReserved,
    /// Some SKUs were short: payment must refund.
    InventoryFailed,
    /// A charge was refunded (compensation for a failed reservation).
    PaymentRefunded,
    /// The order reached CONFIRMED.
    OrderConfirmed,
    /// The order reached CANCELLED.
    OrderCancelled,
}

impl EventType {
    /// Every type, e.g. for subscription filter policies and docs.
    pub const ALL: [EventType; 8] = [
        EventType::OrderPlaced,
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::InventoryReserved,
        EventType::InventoryFailed,
        EventType::PaymentRefunded,
        EventType::OrderConfirmed,
        EventType::OrderCancelled,
    ];

    /// The name on the wire (the `type` field and SNS attribute).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "OrderPlaced",
            EventType::PaymentSucceeded => "PaymentSucceeded",
            EventType::PaymentFailed => "PaymentFailed",
            EventType::InventoryReserved => "InventoryReserved",
            EventType::InventoryFailed => "InventoryFailed",
            EventType::PaymentRefunded => "PaymentRefunded",
            EventType::OrderConfirmed => "OrderConfirmed",
            EventType::OrderCancelled => "OrderCancelled",
        }
    }

    /// Parses the wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Payload of [`EventType::OrderPlaced`]: what was ordered, for every consumer, and never
/// how it is paid. The card token stays on the stored order, where payment reads it
/// (see [`crate::order::PaymentToken`]): an event is copied to the outbox (kept 7 days),
/// the topic, every subscribed queue and, when it fails, a DLQ (kept 14 days), and is
/// printed by `make redrive`, so anything in it is as good as public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    /// Who ordered.
    pub customer_id: CustomerId,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// What the order costs (payment charges the stored order's total, not this).
    pub total: Money,
    /// The card token, as events carried it before it moved to the stored order. Read,
    /// never written (`skip_serializing`): after the deploy that moved it, queues and
    /// DLQs still hold events written before, for orders stored without a token, and
    /// payment charges those with this one ([`OrderPlaced::legacy_payment_token`]).
    /// Accepting the field by name keeps `deny_unknown_fields` for every other one.
    /// Delete it a release later, once the oldest such event has aged out of the DLQs
    /// (14 days after the deploy).
    #[serde(default, rename = "payment_token", skip_serializing)]
    legacy_payment_token: Option<PaymentToken>,
}

impl OrderPlaced {
    /// The event announcing a just-placed `order`: the one place that says what
    /// `OrderPlaced` carries of an order.
    pub fn of(order: &Order) -> Self {
        Self {
            customer_id: order.customer_id.clone(),
            items: order.items.clone(),
            total: order.total,
            legacy_payment_token: None,
        }
    }

    /// The card token of an event written before the token moved to the stored order;
    /// `None` for every event written since.
    pub fn legacy_payment_token(&self) -> Option<&PaymentToken> {
        self.legacy_payment_token.as_ref()
    }
}

/// Payload of [`EventType::PaymentSucceeded`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSucceeded {
    /// Who was charged.
    pub customer_id: CustomerId,
    /// The gateway's id for the charge; a refund names it.
    pub charge_id: String,
    /// What was charged.
    pub amount: Money,
    /// The lines to reserve.
    pub items: Vec<OrderItem>,
}

/// Payload of [`EventType::PaymentFailed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentFailed {
    /// Who tried to pay.
    pub customer_id: CustomerId,
    /// Why the gateway declined, in words fit for the customer.
    pub reason: String,
}

/// One reserved line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservedLine {
    /// The SKU reserved.
    pub sku: Sku,
    /// How many units.
    pub quantity: Quantity,
}

impl ReservedLine {
    /// The reservation an order line asks for: its SKU and quantity, not its price.
    pub fn of(item: &OrderItem) -> Self {
        Self {
            sku: item.sku.clone(),
            quantity: item.quantity,
        }
    }
}

/// Payload of [`EventType::InventoryReserved`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryReserved {
    /// Who ordered.
    pub customer_id: CustomerId,
    /// Every line, reserved together.
    pub lines: Vec<ReservedLine>,
}

/// Payload of [`EventType::InventoryFailed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryFailed {
    /// Who ordered.
    pub customer_id: CustomerId,
    /// The SKUs that did not have enough stock (nothing was reserved).
    pub short_skus: Vec<Sku>,
    /// The charge to refund.
    pub charge_id: String,
    /// The amount to refund.
    pub amount: Money,
}

/// Payload of [`EventType::PaymentRefunded`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRefunded {
    /// Who was refunded.
    pub customer_id: CustomerId,
    /// The refunded charge.
    pub charge_id: String,
    /// The gateway's id for the refund.
    pub refund_id: String,
    /// What was refunded.
    pub amount: Money,
}

/// Payload of [`EventType::OrderConfirmed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderConfirmed {
    /// Who ordered.
    pub customer_id: CustomerId,
    /// What was paid.
    pub total: Money,
}

/// Payload of [`EventType::OrderCancelled`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    /// Who ordered.
    pub customer_id: CustomerId,
    /// Why, in words fit for the customer.
    pub reason: String,
}

/// One event, with its typed payload. The variant decides the envelope's `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum Event {
    /// See [`OrderPlaced`].
    OrderPlaced(OrderPlaced),
    /// See [`PaymentSucceeded`].
    PaymentSucceeded(PaymentSucceeded),
    /// See [`PaymentFailed`].
    PaymentFailed(PaymentFailed),
    /// See [`InventoryReserved`].
    InventoryReserved(InventoryReserved),
    /// See [`InventoryFailed`].
    InventoryFailed(InventoryFailed),
    /// See [`PaymentRefunded`].
    PaymentRefunded(PaymentRefunded),
    /// See [`OrderConfirmed`].
    OrderConfirmed(OrderConfirmed),
    /// See [`OrderCancelled`].
    OrderCancelled(OrderCancelled),
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Event::OrderPlaced(_) => EventType::OrderPlaced,
            Event::PaymentSucceeded(_) => EventType::PaymentSucceeded,
            Event::PaymentFailed(_) => EventType::PaymentFailed,
            Event::InventoryReserved(_) => EventType::InventoryReserved,
            Event::InventoryFailed(_) => EventType::InventoryFailed,
            Event::PaymentRefunded(_) => EventType::PaymentRefunded,
            Event::OrderConfirmed(_) => EventType::OrderConfirmed,
            Event::OrderCancelled(_) => EventType::OrderCancelled,
        }
    }
}

/// What every message carries around its payload: enough to deduplicate (`id`), route
/// (`type`), evolve (`version`), order and trace (`occurred_at`, `correlation_id`) and
/// find its order (`order_id`) without decoding the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Stable across retries; consumers deduplicate on it.
    pub id: EventId,
    /// Schema version of this envelope and payload.
    pub version: u32,
    /// When the change happened (RFC 3339).
    pub occurred_at: DateTime<Utc>,
    /// The request that caused it.
    pub correlation_id: CorrelationId,
    /// The order it is about.
    pub order_id: OrderId,
    /// When the order was placed. `OrderPlaced` sets it and every event caused by another
    /// copies it, so any step can tell how old the order is (the end-to-end latency
    /// metric) without reading the order. Optional: older messages lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_placed_at: Option<DateTime<Utc>>,
    /// The type and payload.
    #[serde(flatten)]
    pub event: Event,
}

/// Why a message body is not an event this code can handle. Each is permanent: retrying
/// the same bytes can never succeed, so the message belongs in the DLQ.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not an envelope (a required field is missing or has the wrong type).
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// A `type` this code does not know.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// A newer schema than this code understands.
    #[error("unsupported schema version {found} (this consumer reads up to {SCHEMA_VERSION})")]
    UnsupportedVersion {
        /// The version the message declared.
        found: u32,
    },
    /// The envelope is fine but its payload does not match the type.
    #[error("invalid {event_type} payload: {reason}")]
    InvalidPayload {
        /// The declared type.
        event_type: EventType,
        /// What is wrong, with the path of the bad field.
        reason: String,
    },
}

/// The envelope with the payload still raw: the first decoding stage.
#[derive(Deserialize)]
struct RawEnvelope {
    id: EventId,
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    occurred_at: DateTime<Utc>,
    correlation_id: CorrelationId,
    order_id: OrderId,
    #[serde(default)]
    order_placed_at: Option<DateTime<Utc>>,
    payload: serde_json::Value,
}

impl Envelope {
    /// Wraps a new event, minting its id now.
    pub fn new(
        order_id: OrderId,
        correlation_id: CorrelationId,
        occurred_at: DateTime<Utc>,
        event: Event,
    ) -> Self {
        Self::with_id(EventId::new(), order_id, correlation_id, occurred_at, event)
    }

    /// Wraps an event under a given id: used when the id must be stable across retries
    /// (see [`EventId::derived`]).
    pub fn with_id(
        id: EventId,
        order_id: OrderId,
        correlation_id: CorrelationId,
        occurred_at: DateTime<Utc>,
        event: Event,
    ) -> Self {
        Self {
            id,
            version: SCHEMA_VERSION,
            occurred_at,
            correlation_id,
            order_id,
            order_placed_at: matches!(event, Event::OrderPlaced(_)).then_some(occurred_at),
            event,
        }
    }

    /// A new event caused by this one: same order and correlation id, and an id derived
    /// from this event's id and the new type, so handling this event again (a retry, a
    /// duplicate) produces the very same event, which downstream deduplication drops.
    pub fn caused_by(&self, event: Event) -> Envelope {
        Envelope {
            order_placed_at: self.order_placed_at,
            ..Envelope::with_id(
                EventId::derived(self.id.as_uuid(), event.event_type().as_str()),
                self.order_id,
                self.correlation_id.clone(),
                Utc::now(),
                event,
            )
        }
    }

    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.event.event_type()
    }

    /// The JSON body as published.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Decodes a message body in stages, so the error says exactly what is wrong.
    pub fn decode(body: &str) -> Result<Envelope, DecodeError> {
        let raw: RawEnvelope =
            serde_json::from_str(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let event_type = EventType::parse(&raw.event_type)
            .ok_or_else(|| DecodeError::UnknownType(raw.event_type.clone()))?;
        if raw.version > SCHEMA_VERSION || raw.version == 0 {
            return Err(DecodeError::UnsupportedVersion { found: raw.version });
        }
        let tagged = serde_json::json!({ "type": raw.event_type, "payload": raw.payload });
        let event = serde_path_to_error::deserialize::<_, Event>(tagged).map_err(|e| {
            DecodeError::InvalidPayload {
                event_type,
                reason: e.to_string(),
            }
        })?;
        Ok(Envelope {
            id: raw.id,
            version: raw.version,
            occurred_at: raw.occurred_at,
            correlation_id: raw.correlation_id,
            order_id: raw.order_id,
            order_placed_at: raw.order_placed_at,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed() -> Envelope {
        Envelope::new(
            OrderId::new(),
            CorrelationId::generate(),
            Utc::now(),
            Event::OrderCancelled(OrderCancelled {
                customer_id: CustomerId::parse("cust-abcd").unwrap(),
                reason: "out of stock".into(),
            }),
        )
    }

    #[test]
    fn envelopes_round_trip_with_their_fields_on_the_wire() {
        let envelope = placed();
        let json = envelope.to_json().unwrap();
        let wire: serde_json::Value = serde_json::from_str(&json).unwrap();
        for field in [
            "id",
            "type",
            "version",
            "occurred_at",
            "correlation_id",
            "order_id",
            "payload",
        ] {
            assert!(wire.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(wire["type"], "OrderCancelled");
        assert_eq!(Envelope::decode(&json).unwrap(), envelope);
    }

    #[test]
    fn decoding_names_what_is_wrong() {
        let good: serde_json::Value = serde_json::from_str(&placed().to_json().unwrap()).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[field] = value;
            v.to_string()
        };
        assert!(matches!(
            Envelope::decode("not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::decode(&with("type", "Shipped".into())),
            Err(DecodeError::UnknownType(t)) if t == "Shipped"
        ));
        assert!(matches!(
            Envelope::decode(&with("version", 2.into())),
            Err(DecodeError::UnsupportedVersion { found: 2 })
        ));
        let err = Envelope::decode(&with("payload", serde_json::json!({"reason": 5})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid OrderCancelled payload"), "{err}");
    }

    /// An `OrderPlaced` as create-order writes it, as JSON: the sample order's.
    fn order_placed_json() -> serde_json::Value {
        let sample = crate::fixtures::SampleOrder::placed(crate::fixtures::APPROVED_TOKEN);
        serde_json::from_str(&sample.placed.to_json().unwrap()).unwrap()
    }

    #[test]
    fn order_placed_never_carries_the_card_token() {
        let wire = order_placed_json();
        let payload = wire["payload"].as_object().unwrap();
        let mut fields: Vec<&str> = payload.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["customer_id", "items", "total"]);
        assert!(!wire.to_string().contains(crate::fixtures::APPROVED_TOKEN));
    }

    /// An event written before the token moved to the stored order still decodes, and its
    /// token is there for payment; it is never written back out. Any other unknown field
    /// is still refused.
    #[test]
    fn an_order_placed_from_before_the_move_decodes_with_its_token() {
        let mut old = order_placed_json();
        old["payload"]["payment_token"] = "tok_old".into();

        let decoded = Envelope::decode(&old.to_string()).unwrap();
        let Event::OrderPlaced(placed) = &decoded.event else {
            panic!("an OrderPlaced: {decoded:?}");
        };
        assert_eq!(
            placed.legacy_payment_token().map(PaymentToken::expose),
            Some("tok_old")
        );
        assert!(!format!("{decoded:?}").contains("tok_old"), "redacted");
        assert!(!decoded.to_json().unwrap().contains("tok_old"));

        let mut unknown = order_placed_json();
        unknown["payload"]["gift_wrap"] = true.into();
        let err = Envelope::decode(&unknown.to_string()).unwrap_err();
        assert!(err.to_string().contains("gift_wrap"), "{err}");
    }

    #[test]
    fn every_type_name_round_trips() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }
}
