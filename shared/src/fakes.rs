//! In-memory implementations of the ports, for fast unit tests of handler logic.
//!
//! They follow the same rules as the DynamoDB adapters (conditional writes, one
//! transaction for place), but they are never what integration tests run against:
//! those use the real adapters and the emulator. Enabled by the `fakes` feature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::events::Envelope;
use crate::idempotency::IdempotencyRecord;
use crate::ids::OrderId;
use crate::order::Order;
use crate::ports::{
    IdempotencyStore, OrderStore, PlaceOutcome, StoreError, Transition, TransitionOutcome,
};

/// Idempotency records in a map.
#[derive(Debug, Clone, Default)]
pub struct InMemoryIdempotencyStore {
    records: Arc<Mutex<HashMap<String, IdempotencyRecord>>>,
}

fn key_is_free(existing: Option<&IdempotencyRecord>, now: i64) -> bool {
    existing.is_none_or(|r| r.is_expired(now) || r.is_abandoned(now))
}

impl InMemoryIdempotencyStore {
    /// The conditional put, synchronously, so `place` can do it under its own lock.
    fn take_key(&self, record: &IdempotencyRecord, now: i64) -> bool {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if !key_is_free(records.get(&record.key), now) {
            return false;
        }
        records.insert(record.key.clone(), record.clone());
        true
    }
}

impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(records.get(key).cloned())
    }

    async fn put_if_absent(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.take_key(record, now_epoch))
    }

    async fn complete(
        &self,
        claimed: &IdempotencyRecord,
        done: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        match records.get(&done.key) {
            Some(held) if held.is_held_by(claimed) => {
                records.insert(done.key.clone(), done.clone());
                Ok(())
            }
            _ => Err(StoreError::Transient(format!(
                "idempotency key {} was claimed again after our claim lapsed; a retry will find what that claimant stores",
                done.key
            ))),
        }
    }

    async fn release(&self, claimed: &IdempotencyRecord) -> Result<(), StoreError> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records
            .get(&claimed.key)
            .is_some_and(|held| held.is_held_by(claimed))
        {
            records.remove(&claimed.key);
        }
        Ok(())
    }
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
    ) -> Result<PlaceOutcome, StoreError> {
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

    async fn transition(&self, transition: &Transition) -> Result<TransitionOutcome, StoreError> {
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        if transition
            .events
            .iter()
            .any(|e| outbox.iter().any(|stored| stored.id == e.id))
        {
            return Ok(TransitionOutcome::AlreadyApplied);
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

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(orders.get(&id).cloned())
    }
}
