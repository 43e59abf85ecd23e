//! Payment: charges placed orders, refunds orders whose stock could not be reserved.
//!
//! Reacts to `OrderPlaced` (charge) and `InventoryFailed` (refund: the compensation step
//! of the saga). The provider call is a side effect outside DynamoDB, yet payment claims
//! no idempotency key: three guards it needs anyway already make every copy of an event
//! safe (the rule is written once, in `domain::idempotency`):
//! - the **order's status**, read before any call: only a PENDING order is charged, only
//!   a PAID one refunded, so a late or redriven copy finds it moved on and does nothing;
//! - the **provider's idempotency key**, derived from the order (`charge-<order id>`), so
//!   concurrent copies, and the retry of a charge whose status write failed, get the
//!   first charge back instead of taking money twice;
//! - the **status change's condition** (`status = PENDING`) and its events' derived ids,
//!   so only one copy moves the order and stores its events.
//!
//! The card token is not in `OrderPlaced`: payment reads it with the stored order (the
//! read it makes anyway, to charge the stored total), and the status change that settles
//! the payment deletes it (see `App::card_token` for why that is safe).

pub mod simulated;
pub mod wiring;

use aws_adapters::consumer::Consumer;
use aws_adapters::tables::{charge_key, refund_key};
use chrono::Utc;
use domain::events::{
    Envelope, Event, InventoryFailed, OrderCancelled, OrderPlaced, PaymentFailed, PaymentRefunded,
    PaymentSucceeded,
};
use domain::failure::Failure;
use domain::order::{Order, OrderStatus, PaymentToken};
use domain::ports::{DeadLetterSink, OrderStore, StoredOrder, Transition, TransitionOutcome};

use domain::ports::{ChargeOutcome, PaymentGateway};

/// The function's dependencies, built once per cold start.
pub struct App<O, G, D> {
    orders: O,
    gateway: G,
    dead_letters: D,
}

impl<O, G, D> Consumer for App<O, G, D>
where
    O: OrderStore,
    G: PaymentGateway,
    D: DeadLetterSink,
{
    type DeadLetters = D;

    fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    /// Every copy of an event may arrive, concurrently or days late: see the guards in
    /// the module's documentation.
    async fn on_event(&self, envelope: Envelope, _deadline: Option<i64>) -> Result<(), Failure> {
        match &envelope.event {
            Event::OrderPlaced(placed) => self.charge(&envelope, placed).await,
            Event::InventoryFailed(failed) => self.refund(&envelope, failed).await,
            other => Err(Failure::Permanent(format!(
                "payment does not handle {} events",
                other.event_type()
            ))),
        }
    }
}

impl<O, G, D> App<O, G, D>
where
    O: OrderStore,
    G: PaymentGateway,
    D: DeadLetterSink,
{
    /// Wires the function.
    pub fn new(orders: O, gateway: G, dead_letters: D) -> Self {
        Self {
            orders,
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
                not_where_expected(other.map(|o| o.status), expected);
                Ok(None)
            }
        }
    }

    /// The card token to charge a PENDING order with.
    ///
    /// Why a missing token is safe: the token is deleted only by the write that moves the
    /// order out of PENDING, and the caller has just read the order (a consistent read)
    /// as PENDING, so for an order this release placed the token is there. A duplicate or
    /// late `OrderPlaced` (a redelivery, a redrive days later) never gets here: it finds
    /// the order PAID or PAYMENT_FAILED and is skipped before any token is needed. If a
    /// charge went through but the write that settles it failed, that write did not
    /// happen: the order is still PENDING with its token, and the retry charges again
    /// under the same provider key (`charge-<order id>`), which answers with the first
    /// charge instead of taking money twice.
    ///
    /// The one order that is PENDING without a stored token is one placed by the
    /// release before, which carried the token in its event: that token is used
    /// ([`OrderPlaced::legacy_payment_token`]). With neither, nothing can ever charge the
    /// order, and guessing would be wrong (failing it would tell the customer their card
    /// was declined), so the event goes to the DLQ with the reason, for a person.
    fn card_token<'a>(
        stored: &'a StoredOrder,
        placed: &'a OrderPlaced,
    ) -> Result<&'a PaymentToken, Failure> {
        if let Some(token) = &stored.payment_token {
            return Ok(token);
        }
        match placed.legacy_payment_token() {
            Some(token) => {
                tracing::info!("no stored card token: charging with the one the event carried");
                Ok(token)
            }
            None => Err(Failure::Permanent(format!(
                "order {} is PENDING with no card token stored and none in the event",
                stored.order.order_id
            ))),
        }
    }

    async fn charge(&self, envelope: &Envelope, placed: &OrderPlaced) -> Result<(), Failure> {
        // One read gives the status, the total and the card token.
        let stored = match self.orders.get_stored(envelope.order_id).await? {
            Some(stored) if stored.order.status == OrderStatus::Pending => stored,
            other => {
                not_where_expected(other.map(|s| s.order.status), OrderStatus::Pending);
                return Ok(());
            }
        };
        let token = Self::card_token(&stored, placed)?;
        let order = &stored.order;
        // The amount is the stored order's, never the event's: the topic only carries
        // what the relay publishes, but the order table is where the price was accepted.
        let total = order.total;
        let outcome = self
            .gateway
            .charge(&charge_key(envelope.order_id), total, token.expose())
            .await?;
        let (to, event) = match outcome {
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
                )
            }
        };
        // Leaving PENDING deletes the stored card token in this same write
        // (`Transition::settles_payment`): no request of its own, and no window in which
        // the order is settled but the token still kept.
        self.apply(
            envelope,
            OrderStatus::Pending,
            to,
            vec![envelope.caused_by(event)],
        )
        .await
    }

    async fn refund(&self, envelope: &Envelope, failed: &InventoryFailed) -> Result<(), Failure> {
        if self.order_in(envelope, OrderStatus::Paid).await?.is_none() {
            return Ok(());
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
            .await
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

/// Logs that an event found its order elsewhere than it expects (`current`, `None` if
/// there is no such order): the event is stale or out of order, and causes nothing.
fn not_where_expected(current: Option<OrderStatus>, expected: OrderStatus) {
    tracing::warn!(
        current = ?current,
        expected = %expected,
        "order is not where this event expects it; nothing to do"
    );
}

#[cfg(test)]
mod tests;
