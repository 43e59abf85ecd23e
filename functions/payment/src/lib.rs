//! Payment: charges placed orders, refunds orders whose stock could not be reserved.
//!
//! Reacts to `OrderPlaced` (charge) and `InventoryFailed` (refund: the compensation step
//! of the saga). The provider call is a side effect outside DynamoDB, so each event goes
//! through the shared idempotency protocol, keyed by the **event id**: claim, call the
//! provider with a key derived from the **order** (so no retry, duplicate or redelivery
//! ever charges twice), store the status change with its events in one transaction, then
//! complete the claim.
//!
//! The card token is not in `OrderPlaced`: payment reads it with the stored order (the
//! read it makes anyway, to charge the stored total), and the status change that settles
//! the payment deletes it (see `App::card_token` for why that is safe).

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
use domain::order::{Order, OrderStatus, PaymentToken};
use domain::ports::{DeadLetterSink, OrderStore, StoredOrder, Transition, TransitionOutcome};

use domain::ports::{ChargeOutcome, PaymentGateway};

/// Prefix of this function's keys in the shared idempotency table. Its role may touch
/// no other key there (`dynamodb:LeadingKeys` in template.yaml, checked against this
/// constant by tests/integration/least_privilege.rs).
const KEY_SCOPE: &str = "payment";

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
            KEY_SCOPE,
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

    async fn charge(&self, envelope: &Envelope, placed: &OrderPlaced) -> Result<String, Failure> {
        // One read gives the status, the total and the card token.
        let stored = match self.orders.get_stored(envelope.order_id).await? {
            Some(stored) if stored.order.status == OrderStatus::Pending => stored,
            other => {
                not_where_expected(other.map(|s| s.order.status), OrderStatus::Pending);
                return Ok("skipped: order not pending".into());
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
        // Leaving PENDING deletes the stored card token in this same write
        // (`Transition::settles_payment`): no request of its own, and no window in which
        // the order is settled but the token still kept.
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
