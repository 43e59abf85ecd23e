//! Inventory: reserves stock for paid orders.
//!
//! On `PaymentSucceeded` it reserves every line atomically: one transaction decrements
//! each SKU's stock only if enough is left, writes a reservation record keyed by the
//! order, moves the order PAID -> CONFIRMED and stores `InventoryReserved` and
//! `OrderConfirmed`. If any SKU is short, nothing is reserved and `InventoryFailed`
//! (naming the short SKUs) is stored instead, so payment refunds. Every effect is a
//! DynamoDB write, so no idempotency key is needed: the reservation record (once per
//! order), the order's `PAID` condition and the events' derived ids make a replay's
//! transaction cancel itself and change nothing.
//!
//! The logic knows stock only through the [`StockStore`] port: the DynamoDB adapter
//! (`aws_adapters::DynamoDbStockStore`) in the function, the in-memory fake in the unit
//! tests.

pub mod wiring;

#[cfg(test)]
mod tests;

use aws_adapters::consumer::Consumer;
use chrono::Utc;
use domain::events::{
    Envelope, Event, InventoryFailed, InventoryReserved, OrderConfirmed, PaymentSucceeded,
    ReservedLine,
};
use domain::failure::Failure;
use domain::order::OrderStatus;
use domain::ports::{DeadLetterSink, ReserveOutcome, StockStore, Transition};

/// The function's dependencies, built once per cold start: generic over the ports, so
/// the tests run the same logic against the in-memory fakes.
pub struct App<S, D> {
    stock: S,
    dead_letters: D,
}

impl<S: StockStore, D: DeadLetterSink> Consumer for App<S, D> {
    type DeadLetters = D;

    fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    async fn on_event(&self, envelope: Envelope, _deadline: Option<i64>) -> Result<(), Failure> {
        match &envelope.event {
            Event::PaymentSucceeded(paid) => self.reserve(&envelope, paid).await,
            other => Err(Failure::Permanent(format!(
                "inventory does not handle {} events",
                other.event_type()
            ))),
        }
    }
}

impl<S: StockStore, D: DeadLetterSink> App<S, D> {
    /// Wires the function: stock and reservations in `stock`, poison to `dead_letters`.
    pub fn new(stock: S, dead_letters: D) -> Self {
        Self {
            stock,
            dead_letters,
        }
    }

    /// The stock store (for seeding and audits).
    pub fn stock_store(&self) -> &S {
        &self.stock
    }

    async fn reserve(&self, envelope: &Envelope, paid: &PaymentSucceeded) -> Result<(), Failure> {
        let now = Utc::now();
        let lines: Vec<ReservedLine> = paid.items.iter().map(ReservedLine::of).collect();
        let confirm = Transition {
            order_id: envelope.order_id,
            from: OrderStatus::Paid,
            to: OrderStatus::Confirmed,
            events: vec![
                envelope.caused_by(Event::InventoryReserved(InventoryReserved {
                    customer_id: paid.customer_id.clone(),
                    lines: lines.clone(),
                })),
                envelope.caused_by(Event::OrderConfirmed(OrderConfirmed {
                    customer_id: paid.customer_id.clone(),
                    total: paid.amount,
                })),
            ],
            at: now,
        };
        match self.stock.reserve(&lines, &confirm).await? {
            ReserveOutcome::Reserved => {
                tracing::info!(lines = lines.len(), "stock reserved; order confirmed");
                aws_adapters::metrics::order_status_changed(
                    OrderStatus::Confirmed,
                    envelope.order_placed_at,
                    now,
                );
                Ok(())
            }
            ReserveOutcome::AlreadyDone => {
                tracing::info!("duplicate event suppressed");
                aws_adapters::metrics::count(aws_adapters::metrics::DUPLICATES_SUPPRESSED);
                Ok(())
            }
            ReserveOutcome::NotAllowed(outcome) => {
                tracing::warn!(outcome = ?outcome, "order is not PAID; nothing reserved (no backwards moves)");
                Ok(())
            }
            ReserveOutcome::Short(short) => {
                let names: Vec<&str> = short.iter().map(|s| s.as_str()).collect();
                tracing::info!(short_skus = %names.join(","), "out of stock; asking payment to refund");
                let failed = envelope.caused_by(Event::InventoryFailed(InventoryFailed {
                    customer_id: paid.customer_id.clone(),
                    short_skus: short.clone(),
                    charge_id: paid.charge_id.clone(),
                    amount: paid.amount,
                }));
                self.stock
                    .record_shortage(envelope.order_id, &short, &[failed])
                    .await?;
                aws_adapters::metrics::count(aws_adapters::metrics::RESERVATIONS_FAILED);
                Ok(())
            }
        }
    }
}
