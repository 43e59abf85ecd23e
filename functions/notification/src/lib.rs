//! Notification: tells the customer about their order, once per notable event, with
//! one named window for a repeat.
//!
//! Order received (`OrderPlaced`), confirmed (`OrderConfirmed`), payment failed
//! (`PaymentFailed`), cancelled and refunded (`OrderCancelled`). Sending is a side effect
//! outside DynamoDB (a publish to the customer-notifications topic), so each event goes
//! through the shared idempotency protocol keyed by its event id; the completed record
//! *is* the record of the notification sent, and a duplicate event sends nothing.
//!
//! The window: if the publish succeeds and completing the claim then fails for the rest
//! of the invocation (or the invocation dies in between), the claim lapses at the
//! deadline and the redelivered event is sent again. SNS has no conditional publish, so
//! no write order closes that window; each notification carries its `event_id` so the
//! receiver can drop the repeat (docs/architecture.md, "Notification's guarantee").

pub mod wiring;

use aws_adapters::consumer::{Consumer, once_per_event};
use domain::events::{Envelope, Event};
use domain::failure::Failure;
use domain::idempotency::{Idempotency, IdempotencyStore};
use domain::ports::{DeadLetterSink, EventPublisher};
use serde::Serialize;

/// Prefix of this function's keys in the shared idempotency table. Its role may touch
/// no other key there (`dynamodb:LeadingKeys` in template.yaml, checked against this
/// constant by tests/integration/least_privilege.rs).
const KEY_SCOPE: &str = "notification";

/// What the customer is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// The kind, e.g. `order_confirmed`; also the message's `type` attribute.
    pub kind: &'static str,
    /// The order it is about.
    pub order_id: String,
    /// Who is told.
    pub customer_id: String,
    /// The text.
    pub message: String,
    /// The event that caused it, for tracing.
    pub event_id: String,
}

/// The notification an event warrants, or `None` for events this function ignores.
pub fn notification_for(envelope: &Envelope) -> Option<Notification> {
    let order = envelope.order_id.to_string();
    let (kind, customer, message) = match &envelope.event {
        Event::OrderPlaced(e) => (
            "order_received",
            &e.customer_id,
            format!("We received your order {order} for {}.", e.total),
        ),
        Event::OrderConfirmed(e) => (
            "order_confirmed",
            &e.customer_id,
            format!("Your order {order} is confirmed: {} paid.", e.total),
        ),
        Event::PaymentFailed(e) => (
            "payment_failed",
            &e.customer_id,
            format!("Payment for order {order} failed: {}.", e.reason),
        ),
        Event::OrderCancelled(e) => (
            "order_cancelled",
            &e.customer_id,
            format!(
                "Order {order} was cancelled ({}) and your payment refunded.",
                e.reason
            ),
        ),
        _ => return None,
    };
    Some(Notification {
        kind,
        order_id: order,
        customer_id: customer.to_string(),
        message,
        event_id: envelope.id.to_string(),
    })
}

/// The function's dependencies, built once per cold start.
pub struct App<P, I, D> {
    sender: P,
    idempotency: Idempotency<I>,
    dead_letters: D,
}

impl<P: EventPublisher, I: IdempotencyStore, D: DeadLetterSink> Consumer for App<P, I, D> {
    type DeadLetters = D;

    fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    async fn on_event(&self, envelope: Envelope, deadline: Option<i64>) -> Result<(), Failure> {
        let notification = notification_for(&envelope).ok_or_else(|| {
            Failure::Permanent(format!(
                "notification does not handle {} events",
                envelope.event_type()
            ))
        })?;
        let body =
            serde_json::to_string(&notification).map_err(|e| Failure::Permanent(e.to_string()))?;
        once_per_event(
            &self.idempotency,
            KEY_SCOPE,
            &envelope,
            deadline,
            || async {
                self.sender
                    .publish(notification.kind, envelope.correlation_id.as_str(), &body)
                    .await?;
                tracing::info!(kind = notification.kind, "notification sent");
                aws_adapters::metrics::count(aws_adapters::metrics::NOTIFICATIONS_SENT);
                Ok("sent".to_string())
            },
        )
        .await
    }
}

impl<P, I, D> App<P, I, D>
where
    P: EventPublisher,
    I: IdempotencyStore,
    D: DeadLetterSink,
{
    /// Wires the function.
    pub fn new(sender: P, idempotency: I, dead_letters: D) -> Self {
        Self {
            sender,
            idempotency: Idempotency::new(idempotency),
            dead_letters,
        }
    }
}

#[cfg(test)]
mod tests;
