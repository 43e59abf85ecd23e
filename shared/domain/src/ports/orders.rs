//! The order store port, and its in-memory fake.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::events::Envelope;
use crate::failure::Failure;
use crate::idempotency::{IdempotencyRecord, InMemoryIdempotencyStore};
use crate::ids::OrderId;
use crate::order::{Order, OrderStatus};

/// What happened to an attempt to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    /// The order, its event and the idempotency record were stored together.
    Placed,
    /// Nothing was stored: the idempotency key is held by an earlier (or concurrent)
    /// request. The caller reads that record and replays its response.
    KeyTaken,
}

/// A status change and the events that announce it, applied together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The order that moves.
    pub order_id: OrderId,
    /// The status it must be in now (checked by a conditional write).
    pub from: OrderStatus,
    /// The status it moves to; `from.can_become(to)` must hold.
    pub to: OrderStatus,
    /// The events written to the outbox in the same transaction. Their ids are derived
    /// from the event that caused the change, so a retry writes the very same events.
    pub events: Vec<Envelope>,
    /// When the change happened.
    pub at: DateTime<Utc>,
}

/// What happened to a [`Transition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// The order moved and its events were stored.
    Applied,
    /// A previous attempt already applied it (its events exist): nothing to do.
    AlreadyDone,
    /// The order is not in `from` (or does not exist): the change would move it
    /// backwards or skip a step, so nothing was written.
    NotAllowed {
        /// The order's current status, if it exists.
        current: Option<OrderStatus>,
    },
}

/// Where orders live.
pub trait OrderStore: Send + Sync {
    /// Stores a new order, its event (the outbox row the relay publishes) and the
    /// completed idempotency record in one transaction: all three or none. This is what
    /// makes "a 201 for an order that was not stored" and "an order whose event is never
    /// published" impossible.
    fn place(
        &self,
        order: &Order,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> impl Future<Output = Result<PlaceOutcome, Failure>> + Send;

    /// Moves an order from one status to the next and stores the events announcing it,
    /// in one transaction: no state change without its events, no events without it.
    fn transition(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = Result<TransitionOutcome, Failure>> + Send;

    /// Reads an order; `None` if there is no such order.
    fn get(&self, id: OrderId) -> impl Future<Output = Result<Option<Order>, Failure>> + Send;
}

/// Orders and outbox events in memory, sharing an idempotency store.
#[derive(Debug, Clone, Default)]
pub struct InMemoryOrderStore {
    orders: Arc<Mutex<HashMap<OrderId, Order>>>,
    outbox: Arc<Mutex<Vec<Envelope>>>,
    /// The idempotency store `place` writes to; share it with the handler.
    pub idempotency: InMemoryIdempotencyStore,
}

impl InMemoryOrderStore {
    /// Every event written to the outbox, in order.
    pub fn outbox(&self) -> Vec<Envelope> {
        self.outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many orders are stored.
    pub fn order_count(&self) -> usize {
        self.orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The in-memory orders and outbox, locked together: the stand-in for a transaction, which
/// other fakes (the stock store) use to change an order together with their own items.
pub(crate) struct OrderTables<'a> {
    orders: MutexGuard<'a, HashMap<OrderId, Order>>,
    outbox: MutexGuard<'a, Vec<Envelope>>,
}

impl InMemoryOrderStore {
    /// Locks the orders, then the outbox (always in this order, as `place` does).
    pub(crate) fn lock(&self) -> OrderTables<'_> {
        let orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        let outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        OrderTables { orders, outbox }
    }
}

impl OrderTables<'_> {
    /// Whether any of `events` is in the outbox already (the outbox put's condition).
    pub(crate) fn any_stored(&self, events: &[Envelope]) -> bool {
        events
            .iter()
            .any(|e| self.outbox.iter().any(|stored| stored.id == e.id))
    }

    /// Whether `transition` may apply now; if not, what it came to: `AlreadyDone` when
    /// its events are stored, `NotAllowed` when the order is elsewhere (or missing).
    pub(crate) fn check(&self, transition: &Transition) -> Result<(), TransitionOutcome> {
        if self.any_stored(&transition.events) {
            return Err(TransitionOutcome::AlreadyDone);
        }
        let Some(order) = self.orders.get(&transition.order_id) else {
            return Err(TransitionOutcome::NotAllowed { current: None });
        };
        if order.status != transition.from || !transition.from.can_become(transition.to) {
            return Err(TransitionOutcome::NotAllowed {
                current: Some(order.status),
            });
        }
        Ok(())
    }

    /// Applies a `transition` that [`OrderTables::check`] allowed: the status and its events.
    pub(crate) fn apply(&mut self, transition: &Transition) {
        if let Some(order) = self.orders.get_mut(&transition.order_id) {
            order.status = transition.to;
            order.updated_at = transition.at;
        }
        self.store(&transition.events);
    }

    /// Writes `events` to the outbox.
    pub(crate) fn store(&mut self, events: &[Envelope]) {
        self.outbox.extend(events.iter().cloned());
    }
}

impl OrderStore for InMemoryOrderStore {
    async fn place(
        &self,
        order: &Order,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> Result<PlaceOutcome, Failure> {
        // One lock over all three writes: the in-memory stand-in for a transaction.
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if !self
            .idempotency
            .take_key(idempotency, order.created_at.timestamp())
        {
            return Ok(PlaceOutcome::KeyTaken);
        }
        orders.insert(order.order_id, order.clone());
        self.outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
        Ok(PlaceOutcome::Placed)
    }

    async fn transition(&self, transition: &Transition) -> Result<TransitionOutcome, Failure> {
        let mut tables = self.lock();
        if let Err(refused) = tables.check(transition) {
            return Ok(refused);
        }
        tables.apply(transition);
        Ok(TransitionOutcome::Applied)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, Failure> {
        let orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(orders.get(&id).cloned())
    }
}
