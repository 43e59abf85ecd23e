//! Payment: charges placed orders, refunds orders whose stock could not be reserved.
//!
//! Reacts to `OrderPlaced` (charge) and `InventoryFailed` (refund: the compensation step
//! of the saga). The provider call is a side effect outside DynamoDB, so each event goes
//! through the shared idempotency protocol, keyed by the **event id**: claim, call the
//! provider with a key derived from the **order** (so no retry, duplicate or redelivery
//! ever charges twice), store the status change with its events in one transaction, then
//! complete the claim.

pub mod simulated;
pub mod wiring;

use aws_adapters::consumer::{Consumer, once_per_event};
use aws_adapters::tables::{charge_key, refund_key};
use chrono::Utc;
use domain::events::{
    Envelope, Event, InventoryFailed, OrderCancelled, OrderPlaced, PaymentFailed, PaymentRefunded,
    PaymentSucceeded,
};
use domain::failure::Failure;
use domain::idempotency::Idempotency;
use domain::idempotency::IdempotencyStore;
use domain::order::{Order, OrderStatus};
use domain::ports::{DeadLetterSink, OrderStore, Transition, TransitionOutcome};

use domain::ports::{ChargeOutcome, PaymentGateway};

/// The function's dependencies, built once per cold start.
pub struct App<O, I, G, D> {
    orders: O,
    idempotency: Idempotency<I>,
    gateway: G,
    dead_letters: D,
}

impl<O, I, G, D> Consumer for App<O, I, G, D>
where
    O: OrderStore,
    I: IdempotencyStore,
    G: PaymentGateway,
    D: DeadLetterSink,
{
    type DeadLetters = D;

    fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    async fn on_event(&self, envelope: Envelope, deadline: Option<i64>) -> Result<(), Failure> {
        once_per_event(
            &self.idempotency,
            "payment",
            &envelope,
            deadline,
            || async {
                match &envelope.event {
                    Event::OrderPlaced(placed) => self.charge(&envelope, placed).await,
                    Event::InventoryFailed(failed) => self.refund(&envelope, failed).await,
                    other => Err(Failure::Permanent(format!(
                        "payment does not handle {} events",
                        other.event_type()
                    ))),
                }
            },
        )
        .await
    }
}

impl<O, I, G, D> App<O, I, G, D>
where
    O: OrderStore,
    I: IdempotencyStore,
    G: PaymentGateway,
    D: DeadLetterSink,
{
    /// Wires the function.
    pub fn new(orders: O, idempotency: I, gateway: G, dead_letters: D) -> Self {
        Self {
            orders,
            idempotency: Idempotency::new(idempotency),
            gateway,
            dead_letters,
        }
    }

    /// The stored order, if it is in `expected`; otherwise the event is stale or out of
    /// order and must not cause a side effect.
    async fn order_in(
        &self,
        envelope: &Envelope,
        expected: OrderStatus,
    ) -> Result<Option<Order>, Failure> {
        let order = self.orders.get(envelope.order_id).await?;
        match order {
            Some(order) if order.status == expected => Ok(Some(order)),
            other => {
                tracing::warn!(
                    current = ?other.map(|o| o.status),
                    expected = %expected,
                    "order is not where this event expects it; nothing to do"
                );
                Ok(None)
            }
        }
    }

    async fn charge(&self, envelope: &Envelope, placed: &OrderPlaced) -> Result<String, Failure> {
        let Some(order) = self.order_in(envelope, OrderStatus::Pending).await? else {
            return Ok("skipped: order not pending".into());
        };
        // The amount is the stored order's, never the event's: the topic only carries
        // what the relay publishes, but the order table is where the price was accepted.
        let total = order.total;
        let outcome = self
            .gateway
            .charge(
                &charge_key(envelope.order_id),
                total,
                placed.payment_token.expose(),
            )
            .await?;
        let (to, event, summary) = match outcome {
            ChargeOutcome::Approved(charge) => {
                tracing::info!(charge_id = %charge.charge_id, amount = %total, "payment succeeded");
                (
                    OrderStatus::Paid,
                    Event::PaymentSucceeded(PaymentSucceeded {
                        customer_id: order.customer_id.clone(),
                        charge_id: charge.charge_id.clone(),
                        amount: total,
                        items: order.items.clone(),
                    }),
                    format!("charged {}", charge.charge_id),
                )
            }
            ChargeOutcome::Declined { reason } => {
                tracing::info!(reason = %reason, "payment declined");
                (
                    OrderStatus::PaymentFailed,
                    Event::PaymentFailed(PaymentFailed {
                        customer_id: order.customer_id.clone(),
                        reason: reason.clone(),
                    }),
                    format!("declined: {reason}"),
                )
            }
        };
        self.apply(
            envelope,
            OrderStatus::Pending,
            to,
            vec![envelope.caused_by(event)],
        )
        .await?;
        Ok(summary)
    }

    async fn refund(
        &self,
        envelope: &Envelope,
        failed: &InventoryFailed,
    ) -> Result<String, Failure> {
        if self.order_in(envelope, OrderStatus::Paid).await?.is_none() {
            return Ok("skipped: order not paid".into());
        }
        let refund = self
            .gateway
            .refund(
                &refund_key(envelope.order_id),
                &failed.charge_id,
                failed.amount,
            )
            .await?;
        tracing::info!(refund_id = %refund.refund_id, amount = %failed.amount, "payment refunded");
        let short: Vec<&str> = failed.short_skus.iter().map(|s| s.as_str()).collect();
        let events = vec![
            envelope.caused_by(Event::PaymentRefunded(PaymentRefunded {
                customer_id: failed.customer_id.clone(),
                charge_id: failed.charge_id.clone(),
                refund_id: refund.refund_id.clone(),
                amount: failed.amount,
            })),
            envelope.caused_by(Event::OrderCancelled(OrderCancelled {
                customer_id: failed.customer_id.clone(),
                reason: format!("out of stock: {}", short.join(", ")),
            })),
        ];
        self.apply(envelope, OrderStatus::Paid, OrderStatus::Cancelled, events)
            .await?;
        Ok(format!("refunded {}", refund.refund_id))
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        from: OrderStatus,
        to: OrderStatus,
        events: Vec<Envelope>,
    ) -> Result<(), Failure> {
        let transition = Transition {
            order_id: envelope.order_id,
            from,
            to,
            events,
            at: Utc::now(),
        };
        match self.orders.transition(&transition).await? {
            TransitionOutcome::Applied => {
                tracing::info!(from = %from, to = %to, "order status changed");
                aws_adapters::metrics::order_status_changed(
                    to,
                    envelope.order_placed_at,
                    transition.at,
                );
                if to == OrderStatus::Cancelled {
                    aws_adapters::metrics::count(aws_adapters::metrics::PAYMENTS_REFUNDED);
                }
            }
            TransitionOutcome::AlreadyDone => {
                tracing::info!(to = %to, "status change already stored by an earlier attempt");
            }
            TransitionOutcome::NotAllowed { current } => {
                tracing::warn!(current = ?current, from = %from, to = %to, "status change refused: no backwards moves");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
