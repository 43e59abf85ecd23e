//! The tables' item layout, spelled once: every key format and the outbox row.
//!
//! The adapters write these items, the relay reads the outbox rows, and the local cloud's
//! audits and the tests look items up by key. All of them build keys here, so a change of
//! layout is one edit that the compiler carries everywhere.
//!
//! Orders table (single-table design, `pk` + `sk`):
//!
//! | item        | pk               | sk                 | notable attributes                  |
//! |-------------|------------------|--------------------|-------------------------------------|
//! | order       | `ORDER#<id>`     | `ORDER`            | the [`domain::order::Order`] fields, and [`PAYMENT_TOKEN`] while PENDING |
//! | outbox row  | `ORDER#<id>`     | `EVENT#<event id>` | [`OutboxRow`]                       |
//!
//! Inventory table (`pk` only): `SKU#<sku>` holds `stock`; `RESERVATION#<order id>` is
//! written once per order, reserved or failed.
//!
//! Payment provider table (the simulated provider's ledger, `pk` only):
//! `CHARGE#<provider key>`, `REFUND#<provider key>`, and `ATTEMPTS#<provider key>`,
//! where payment's provider keys are [`charge_key`] and [`refund_key`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use domain::events::Envelope;
use domain::ids::{OrderId, Sku};

/// Sort key of an order item.
pub const ORDER_SK: &str = "ORDER";

/// The order item's attribute that holds the card token, from the order's placement
/// until the status change that settles its payment removes it (see
/// [`domain::ports::Transition::settles_payment`]). Not an [`domain::order::Order`]
/// field, so reading the order for the API drops it.
pub const PAYMENT_TOKEN: &str = "payment_token";

/// The order item's attribute that names the caller who placed it
/// ([`domain::ids::Caller`]): only that caller may read the order back. Not an
/// [`domain::order::Order`] field, so no answer of the API carries it.
pub const OWNER: &str = "owner";

/// Sort-key prefix of outbox rows; the relay's stream filter in template.yaml matches on it.
pub const OUTBOX_SK_PREFIX: &str = "EVENT#";

/// How long an outbox row is kept after it is written: long enough for the relay to
/// publish it (or for the failure destination to name it), short enough to keep the
/// table small.
pub const OUTBOX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Partition key of an order and its outbox rows.
pub fn order_pk(id: OrderId) -> String {
    format!("ORDER#{id}")
}

/// Partition key of a SKU's stock item.
pub fn sku_pk(sku: &Sku) -> String {
    format!("{SKU_PREFIX}{sku}")
}

/// Prefix of stock items' keys, for scans that read every SKU.
pub const SKU_PREFIX: &str = "SKU#";

/// Partition key of the item that records an order's reservation (or its shortage).
pub fn reservation_pk(order_id: OrderId) -> String {
    format!("RESERVATION#{order_id}")
}

/// The provider key payment charges an order under. It names the order alone, so the
/// provider sees one key for the order's whole life, whatever redelivers the event.
pub fn charge_key(order_id: OrderId) -> String {
    format!("charge-{order_id}")
}

/// The provider key payment refunds an order under (one refund per order).
pub fn refund_key(order_id: OrderId) -> String {
    format!("refund-{order_id}")
}

/// Partition key of the provider ledger's entry for a charge.
pub fn charge_entry_pk(provider_key: &str) -> String {
    format!("CHARGE#{provider_key}")
}

/// Partition key of the provider ledger's entry for a refund.
pub fn refund_entry_pk(provider_key: &str) -> String {
    format!("REFUND#{provider_key}")
}

/// The order a ledger entry's key belongs to, and whether it is a charge (`true`) or a
/// refund, for audits that add up the ledger; `None` for other items.
pub fn ledger_entry_order(pk: &str) -> Option<(&str, bool)> {
    if let Some(order) = pk.strip_prefix("CHARGE#charge-") {
        Some((order, true))
    } else {
        pk.strip_prefix("REFUND#refund-")
            .map(|order| (order, false))
    }
}

/// Partition key of the provider ledger's attempt counter for one provider key.
pub fn attempts_pk(provider_key: &str) -> String {
    format!("ATTEMPTS#{provider_key}")
}

/// One outbox row: an event stored in the same transaction as the state change that
/// raised it, for the relay to publish from the table's stream.
///
/// The relay publishes `envelope` verbatim and never re-encodes it, so what consumers get
/// is exactly what was stored; `event_type` and `correlation_id` ride beside it because
/// they become SNS message attributes (the subscriptions filter on the type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// [`order_pk`] of the event's order.
    pub pk: String,
    /// [`OUTBOX_SK_PREFIX`] and the event id.
    pub sk: String,
    /// The event's type name, as SNS subscriptions filter on it.
    pub event_type: String,
    /// The event's correlation id, for the message attribute.
    pub correlation_id: String,
    /// The whole event envelope, as JSON.
    pub envelope: String,
    /// When DynamoDB's TTL may delete the row, in epoch seconds ([`OUTBOX_TTL`]).
    pub expires_at: i64,
}

impl OutboxRow {
    /// The row that stores `event`.
    pub fn of(event: &Envelope) -> Result<Self, serde_json::Error> {
        let ttl = i64::try_from(OUTBOX_TTL.as_secs()).unwrap_or(i64::MAX);
        Ok(Self {
            pk: order_pk(event.order_id),
            sk: format!("{OUTBOX_SK_PREFIX}{}", event.id),
            event_type: event.event_type().as_str().to_owned(),
            correlation_id: event.correlation_id.to_string(),
            envelope: event.to_json()?,
            expires_at: event.occurred_at.timestamp().saturating_add(ttl),
        })
    }
}
