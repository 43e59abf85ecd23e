//! The order store port, and its in-memory fake.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

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
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        if transition
            .events
            .iter()
            .any(|e| outbox.iter().any(|stored| stored.id == e.id))
        {
            return Ok(TransitionOutcome::AlreadyDone);
        }
        let Some(order) = orders.get_mut(&transition.order_id) else {
            return Ok(TransitionOutcome::NotAllowed { current: None });
        };
        if order.status != transition.from || !transition.from.can_become(transition.to) {
            return Ok(TransitionOutcome::NotAllowed {
                current: Some(order.status),
            });
        }
        order.status = transition.to;
        order.updated_at = transition.at;
        outbox.extend(transition.events.iter().cloned());
        Ok(TransitionOutcome::Applied)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, Failure> {
        let orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(orders.get(&id).cloned())
    }
}
