//! The pipeline's business and technical metrics, named once.
//!
//! Each function counts through the `metrics` facade; [`crate::telemetry::init`] installs
//! the collector that writes them as CloudWatch Embedded Metric Format lines after every
//! invocation (namespace [`crate::telemetry::METRICS_NAMESPACE`], dimension `service`).
//! Without a collector (unit tests) the calls do nothing. The dashboard in template.yaml
//! charts these names.
//!
//! Counts are taken where the effect is *stored*, never where it is merely attempted, so
//! a retried delivery does not count twice.

use chrono::{DateTime, Utc};

use domain::order::OrderStatus;

/// Orders accepted by the API (replays excluded).
pub const ORDERS_PLACED: &str = "OrdersPlaced";
/// API requests answered from an earlier response with the same Idempotency-Key.
pub const IDEMPOTENT_REPLAYS: &str = "IdempotentReplays";
/// Charges approved.
pub const PAYMENTS_SUCCEEDED: &str = "PaymentsSucceeded";
/// Charges declined.
pub const PAYMENTS_FAILED: &str = "PaymentsFailed";
/// Charges refunded because stock was short.
pub const PAYMENTS_REFUNDED: &str = "PaymentsRefunded";
/// Orders whose stock could not be reserved.
pub const RESERVATIONS_FAILED: &str = "ReservationsFailed";
/// Orders that reached CONFIRMED.
pub const ORDERS_CONFIRMED: &str = "OrdersConfirmed";
/// Orders that reached CANCELLED.
pub const ORDERS_CANCELLED: &str = "OrdersCancelled";
/// Messages sent to customers.
pub const NOTIFICATIONS_SENT: &str = "NotificationsSent";
/// Deliveries of an event already handled, recognised and skipped.
pub const DUPLICATES_SUPPRESSED: &str = "DuplicatesSuppressed";
/// Messages that can never be processed, forwarded to the DLQ.
pub const POISON_MESSAGES: &str = "PoisonMessages";
/// Transactions tried again within an invocation because DynamoDB cancelled them for
/// contention (a concurrent transaction on the same item, or throttling): a hot item.
pub const TRANSACTION_RETRIES: &str = "TransactionRetries";
/// Milliseconds from an order's placement to its final state (a histogram).
pub const ORDER_COMPLETION_MS: &str = "OrderCompletionLatency";
/// Written by the collector on a process's first invocation.
pub const COLD_START: &str = "ColdStart";

/// Tells the collector each metric's unit, once per cold start (from
/// [`crate::telemetry::init`]), so counting stays one atomic add.
pub fn describe() {
    for name in [
        ORDERS_PLACED,
        IDEMPOTENT_REPLAYS,
        PAYMENTS_SUCCEEDED,
        PAYMENTS_FAILED,
        PAYMENTS_REFUNDED,
        RESERVATIONS_FAILED,
        ORDERS_CONFIRMED,
        ORDERS_CANCELLED,
        NOTIFICATIONS_SENT,
        DUPLICATES_SUPPRESSED,
        POISON_MESSAGES,
        TRANSACTION_RETRIES,
    ] {
        ::metrics::describe_counter!(name, ::metrics::Unit::Count, "");
    }
    ::metrics::describe_histogram!(ORDER_COMPLETION_MS, ::metrics::Unit::Milliseconds, "");
}

/// Adds one to a counter.
pub fn count(name: &'static str) {
    ::metrics::counter!(name).increment(1);
}

/// Counts a stored status change, and for a final status records how long the order
/// took from placement (when the event says when that was).
pub fn order_status_changed(to: OrderStatus, placed_at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    let name = match to {
        OrderStatus::Pending => return,
        OrderStatus::Paid => PAYMENTS_SUCCEEDED,
        OrderStatus::PaymentFailed => PAYMENTS_FAILED,
        OrderStatus::Confirmed => ORDERS_CONFIRMED,
        OrderStatus::Cancelled => ORDERS_CANCELLED,
    };
    count(name);
    if let Some(placed_at) = placed_at.filter(|_| to.is_final()) {
        let millis = (now - placed_at).num_milliseconds().max(0);
        // Milliseconds fit f64 exactly for any realistic duration.
        ::metrics::histogram!(ORDER_COMPLETION_MS).record(millis as f64);
    }
}
