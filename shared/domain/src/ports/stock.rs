//! The stock port, and its in-memory fake.
//!
//! Inventory knows only this trait: it reserves every line of a paid order together with
//! the order's PAID -> CONFIRMED move, or records the shortage. The DynamoDB adapter does
//! each in one transaction; the fake keeps the same rules under one lock, so inventory's
//! logic is tested in milliseconds and behaves the same against DynamoDB.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use crate::events::{Envelope, ReservedLine};
use crate::failure::Failure;
use crate::ids::{OrderId, Sku};

use super::orders::{InMemoryOrderStore, Transition, TransitionOutcome};

/// What a reservation attempt (or the record of a shortage) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every line reserved, the order confirmed, the events stored.
    Reserved,
    /// This order was reserved or failed before: nothing changed.
    AlreadyDone,
    /// These SKUs lacked stock: nothing was reserved.
    Short(Vec<Sku>),
    /// The order is not PAID: nothing was reserved, no status moved.
    NotAllowed(TransitionOutcome),
}

/// Stock levels and the one reservation record per order.
///
/// Every write is all-or-nothing and idempotent by its own conditions (a SKU's stock
/// never goes negative, an order is reserved or failed once, the order moves only from
/// PAID, its events are stored under ids derived from the event), so a redelivered event
/// changes nothing and needs no idempotency key of its own.
pub trait StockStore: Send + Sync {
    /// Reserves every line, records the reservation, and applies `confirm` (PAID ->
    /// CONFIRMED with its events): all together or nothing. A short SKU, a reservation
    /// already there, or an order that is not PAID cancels the whole of it, and the
    /// outcome says which.
    fn reserve(
        &self,
        lines: &[ReservedLine],
        confirm: &Transition,
    ) -> impl Future<Output = Result<ReserveOutcome, Failure>> + Send;

    /// Records that the order could not be reserved and stores `events` (its
    /// `InventoryFailed`), once: the order's status does not change here. Answers
    /// `Short(short)` when stored now, `AlreadyDone` when an earlier attempt stored it.
    fn record_shortage(
        &self,
        order_id: OrderId,
        short: &[Sku],
        events: &[Envelope],
    ) -> impl Future<Output = Result<ReserveOutcome, Failure>> + Send;

    /// A SKU's stock level, if the SKU is stocked at all (for audits and tests).
    fn stock(&self, sku: &Sku) -> impl Future<Output = Result<Option<u64>, Failure>> + Send;

    /// Sets a SKU's stock level (seeding for demos and tests).
    fn set_stock(&self, sku: &Sku, units: u64) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// An order's reservation record, as the fake keeps it: what tests look at to see
/// whether (and how) an order was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Every line was reserved.
    Reserved(Vec<ReservedLine>),
    /// These SKUs were short; nothing was reserved.
    Failed(Vec<Sku>),
}

/// Stock in memory: the fake for unit tests. It follows the adapter's rules: stock never
/// goes negative, a reservation is all-or-nothing, a replay changes nothing, and the
/// order moves (and its events are stored) in the [`InMemoryOrderStore`] it shares, where
/// tests observe them. Set `fail_with` to make every call fail, as an unreachable table
/// would.
#[derive(Debug, Clone, Default)]
pub struct InMemoryStockStore {
    stock: Arc<Mutex<HashMap<Sku, u64>>>,
    reservations: Arc<Mutex<HashMap<OrderId, Reservation>>>,
    orders: InMemoryOrderStore,
    /// When set, every call fails with this.
    pub fail_with: Option<Failure>,
}

impl InMemoryStockStore {
    /// Stock whose orders (status, outbox, idempotency keys) live in `orders`.
    pub fn new(orders: InMemoryOrderStore) -> Self {
        Self {
            orders,
            ..Self::default()
        }
    }

    /// The order store it moves orders in, for tests to read statuses and events.
    pub fn orders(&self) -> &InMemoryOrderStore {
        &self.orders
    }

    /// The order's reservation record, if it was reserved or failed.
    pub fn reservation(&self, order_id: OrderId) -> Option<Reservation> {
        self.reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&order_id)
            .cloned()
    }

    fn check_failure(&self) -> Result<(), Failure> {
        self.fail_with.clone().map_or(Ok(()), Err)
    }
}

/// DynamoDB refuses a transaction that writes one item twice; so does the fake.
fn distinct_skus(lines: &[ReservedLine]) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    match lines.iter().find(|line| !seen.insert(&line.sku)) {
        Some(line) => Err(Failure::Permanent(format!(
            "{} appears twice in one reservation",
            line.sku
        ))),
        None => Ok(()),
    }
}

impl StockStore for InMemoryStockStore {
    async fn reserve(
        &self,
        lines: &[ReservedLine],
        confirm: &Transition,
    ) -> Result<ReserveOutcome, Failure> {
        self.check_failure()?;
        if !confirm.from.can_become(confirm.to) {
            return Err(Failure::Permanent(format!(
                "{} -> {} is not an allowed transition",
                confirm.from, confirm.to
            )));
        }
        distinct_skus(lines)?;
        // Every table locked at once: the in-memory stand-in for one transaction.
        let mut stock = self.stock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reservations = self
            .reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut tables = self.orders.lock();

        let short: Vec<Sku> = lines
            .iter()
            .filter(|line| {
                stock
                    .get(&line.sku)
                    .is_none_or(|units| *units < u64::from(line.quantity.get()))
            })
            .map(|line| line.sku.clone())
            .collect();
        let reserved_before = reservations.contains_key(&confirm.order_id);
        let transition = tables.check(confirm);

        // Read as the adapter reads a cancelled transaction: the reservation
        // already there is a duplicate; then the order's own answer; then the shortage.
        if reserved_before {
            return Ok(ReserveOutcome::AlreadyDone);
        }
        match transition {
            Err(TransitionOutcome::AlreadyDone) => return Ok(ReserveOutcome::AlreadyDone),
            Err(refused) => return Ok(ReserveOutcome::NotAllowed(refused)),
            Ok(()) if !short.is_empty() => return Ok(ReserveOutcome::Short(short)),
            Ok(()) => {}
        }

        for line in lines {
            if let Some(units) = stock.get_mut(&line.sku) {
                *units -= u64::from(line.quantity.get());
            }
        }
        reservations.insert(confirm.order_id, Reservation::Reserved(lines.to_vec()));
        tables.apply(confirm);
        Ok(ReserveOutcome::Reserved)
    }

    async fn record_shortage(
        &self,
        order_id: OrderId,
        short: &[Sku],
        events: &[Envelope],
    ) -> Result<ReserveOutcome, Failure> {
        self.check_failure()?;
        let mut reservations = self
            .reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut tables = self.orders.lock();
        if reservations.contains_key(&order_id) || tables.any_stored(events) {
            return Ok(ReserveOutcome::AlreadyDone);
        }
        reservations.insert(order_id, Reservation::Failed(short.to_vec()));
        tables.store(events);
        Ok(ReserveOutcome::Short(short.to_vec()))
    }

    async fn stock(&self, sku: &Sku) -> Result<Option<u64>, Failure> {
        self.check_failure()?;
        let stock = self.stock.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(stock.get(sku).copied())
    }

    async fn set_stock(&self, sku: &Sku, units: u64) -> Result<(), Failure> {
        self.check_failure()?;
        self.stock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sku.clone(), units);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::events::{Event, InventoryFailed};
    use crate::ids::{CorrelationId, CustomerId};
    use crate::money::{Currency, Money};
    use crate::order::{OrderStatus, Quantity};
    use crate::ports::OrderStore;

    fn sku(name: &str) -> Sku {
        Sku::parse(name).unwrap()
    }

    fn line(name: &str, units: u32) -> ReservedLine {
        ReservedLine {
            sku: sku(name),
            quantity: Quantity::new(units).unwrap(),
        }
    }

    fn shortage(order_id: OrderId) -> Envelope {
        Envelope::new(
            order_id,
            CorrelationId::parse("stock-test").unwrap(),
            Utc::now(),
            Event::InventoryFailed(InventoryFailed {
                customer_id: CustomerId::parse("cust-0001").unwrap(),
                short_skus: vec![sku("SKU-MUG")],
                charge_id: "ch_1".into(),
                amount: Money::new(1500, Currency::USD),
            }),
        )
    }

    /// No order exists: the confirm move is refused, the lines stay untouched.
    #[tokio::test]
    async fn a_reservation_for_an_order_that_is_not_paid_changes_nothing() {
        let store = InMemoryStockStore::default();
        store.set_stock(&sku("SKU-MUG"), 5).await.unwrap();
        let order_id = OrderId::new();
        let confirm = Transition {
            order_id,
            from: OrderStatus::Paid,
            to: OrderStatus::Confirmed,
            events: vec![],
            at: Utc::now(),
        };
        let outcome = store
            .reserve(&[line("SKU-MUG", 2)], &confirm)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ReserveOutcome::NotAllowed(TransitionOutcome::NotAllowed { current: None })
        );
        assert_eq!(store.stock(&sku("SKU-MUG")).await.unwrap(), Some(5));
        assert_eq!(store.reservation(order_id), None);
        assert_eq!(store.orders().get(order_id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_shortage_is_stored_once() {
        let store = InMemoryStockStore::default();
        let order_id = OrderId::new();
        let failed = shortage(order_id);
        let short = [sku("SKU-MUG")];
        let first = store
            .record_shortage(order_id, &short, std::slice::from_ref(&failed))
            .await
            .unwrap();
        let again = store
            .record_shortage(order_id, &short, std::slice::from_ref(&failed))
            .await
            .unwrap();
        assert_eq!(first, ReserveOutcome::Short(short.to_vec()));
        assert_eq!(again, ReserveOutcome::AlreadyDone);
        assert_eq!(store.orders().outbox(), vec![failed]);
        assert_eq!(
            store.reservation(order_id),
            Some(Reservation::Failed(short.to_vec()))
        );
    }

    #[tokio::test]
    async fn one_sku_twice_is_refused_like_dynamodb_refuses_it() {
        let store = InMemoryStockStore::default();
        let confirm = Transition {
            order_id: OrderId::new(),
            from: OrderStatus::Paid,
            to: OrderStatus::Confirmed,
            events: vec![],
            at: Utc::now(),
        };
        let twice = [line("SKU-MUG", 1), line("SKU-MUG", 1)];
        let refused = store.reserve(&twice, &confirm).await;
        assert!(refused.is_err_and(|e| !e.is_transient()));
    }

    #[tokio::test]
    async fn fail_with_fails_every_call() {
        let store = InMemoryStockStore {
            fail_with: Some(Failure::Transient("table unreachable".into())),
            ..InMemoryStockStore::default()
        };
        assert!(
            store
                .set_stock(&sku("SKU-MUG"), 1)
                .await
                .is_err_and(|e| e.is_transient())
        );
        assert!(store.stock(&sku("SKU-MUG")).await.is_err());
    }
}
