//! The order store port, and its in-memory fake.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::events::Envelope;
use crate::failure::Failure;
use crate::idempotency::{IdempotencyRecord, InMemoryIdempotencyStore, PutIfAbsent};
use crate::ids::{Caller, OrderId};
use crate::order::{Order, OrderStatus, PaymentToken};

/// What happened to an attempt to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    /// The order, its event and the idempotency record were stored together.
    Placed,
    /// Nothing was stored: the idempotency key is held by an earlier (or concurrent)
    /// request. Its record comes back with the refusal (DynamoDB's
    /// `ReturnValuesOnConditionCheckFailure=ALL_OLD`), for the caller to judge and replay
    /// without a second read; `None` while a concurrent request is still writing it.
    KeyTaken(Option<IdempotencyRecord>),
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

impl Transition {
    /// Whether this change settles the order's payment: it leaves PENDING (for PAID or
    /// PAYMENT_FAILED), after which the order is never charged again. Such a change
    /// deletes the stored card token in the same write, so the token lives exactly as
    /// long as the order is PENDING. Tied to the status rather than to a flag the caller
    /// sets, so that no future way out of PENDING can forget it.
    pub fn settles_payment(&self) -> bool {
        self.from == OrderStatus::Pending
    }
}

/// An order with what only its store keeps beside it: who placed it and the card token.
/// They are fields here, not on [`Order`], so the order the API returns can carry
/// neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// The order as stored.
    pub order: Order,
    /// The caller that placed it, the only one who may read it back; `None` for an
    /// order stored before orders had owners, which no caller may read.
    pub owner: Option<Caller>,
    /// The card token create-order stored with it; `None` once the order has left
    /// PENDING (the write that settled the payment deleted it), or for an order stored
    /// before tokens were kept on orders.
    pub payment_token: Option<PaymentToken>,
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
    /// Stores a new order (with its owner and card token), its event (the outbox row the
    /// relay publishes) and the completed idempotency record in one transaction: all
    /// three or none. This is what makes "a 201 for an order that was not stored" and "an
    /// order whose event is never published" impossible. The owner and the token go on
    /// the order's item only, read back with [`OrderStore::get_stored`].
    fn place(
        &self,
        new: &StoredOrder,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> impl Future<Output = Result<PlaceOutcome, Failure>> + Send;

    /// Moves an order from one status to the next and stores the events announcing it,
    /// in one transaction: no state change without its events, no events without it.
    /// A change that [settles the payment](Transition::settles_payment) also deletes the
    /// card token, in the same write.
    fn transition(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = Result<TransitionOutcome, Failure>> + Send;

    /// Reads an order; `None` if there is no such order. Never the card token.
    fn get(&self, id: OrderId) -> impl Future<Output = Result<Option<Order>, Failure>> + Send;

    /// Reads an order with its owner and card token (for get-order, which answers only
    /// the owner, and for payment, which charges with the token): the same single read
    /// as [`OrderStore::get`], so neither costs an extra request.
    fn get_stored(
        &self,
        id: OrderId,
    ) -> impl Future<Output = Result<Option<StoredOrder>, Failure>> + Send;
}

/// Orders and outbox events in memory, sharing an idempotency store.
#[derive(Debug, Clone, Default)]
pub struct InMemoryOrderStore {
    orders: Arc<Mutex<HashMap<OrderId, StoredOrder>>>,
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

    /// Deletes an order's stored card token, as if a release that kept the token in
    /// the event had placed it: for tests of how payment treats such orders.
    pub fn forget_payment_token(&self, id: OrderId) {
        if let Some(stored) = self
            .orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id)
        {
            stored.payment_token = None;
        }
    }
}

/// The in-memory orders and outbox, locked together: the stand-in for a transaction, which
/// other fakes (the stock store) use to change an order together with their own items.
pub(crate) struct OrderTables<'a> {
    orders: MutexGuard<'a, HashMap<OrderId, StoredOrder>>,
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
        let Some(StoredOrder { order, .. }) = self.orders.get(&transition.order_id) else {
            return Err(TransitionOutcome::NotAllowed { current: None });
        };
        if order.status != transition.from || !transition.from.can_become(transition.to) {
            return Err(TransitionOutcome::NotAllowed {
                current: Some(order.status),
            });
        }
        Ok(())
    }

    /// Applies a `transition` that [`OrderTables::check`] allowed: the status (and, when
    /// it settles the payment, the token's deletion) and its events.
    pub(crate) fn apply(&mut self, transition: &Transition) {
        if let Some(stored) = self.orders.get_mut(&transition.order_id) {
            stored.order.status = transition.to;
            stored.order.updated_at = transition.at;
            if transition.settles_payment() {
                stored.payment_token = None;
            }
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
        new: &StoredOrder,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> Result<PlaceOutcome, Failure> {
        let order = &new.order;
        // One lock over all three writes: the in-memory stand-in for a transaction.
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if let PutIfAbsent::Live(existing) = self
            .idempotency
            .take_key(idempotency, order.created_at.timestamp())
        {
            return Ok(PlaceOutcome::KeyTaken(Some(existing)));
        }
        orders.insert(order.order_id, new.clone());
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
        Ok(self.get_stored(id).await?.map(|stored| stored.order))
    }

    async fn get_stored(&self, id: OrderId) -> Result<Option<StoredOrder>, Failure> {
        let orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(orders.get(&id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{APPROVED_TOKEN, SampleOrder};
    use crate::order::TRANSITIONS;

    fn settle(sample: &SampleOrder, to: OrderStatus) -> Transition {
        Transition {
            order_id: sample.order.order_id,
            from: OrderStatus::Pending,
            to,
            events: vec![],
            at: Utc::now(),
        }
    }

    async fn token(store: &InMemoryOrderStore, sample: &SampleOrder) -> Option<String> {
        let stored = store.get_stored(sample.order.order_id).await.unwrap();
        let token = stored.expect("the order is stored").payment_token;
        token.map(|t| t.expose().to_owned())
    }

    /// The token is stored with the order and read with it, and the write that settles
    /// the payment (either way) deletes it; a refused write deletes nothing.
    #[tokio::test]
    async fn the_card_token_lives_while_the_order_is_pending() {
        for to in [OrderStatus::Paid, OrderStatus::PaymentFailed] {
            let store = InMemoryOrderStore::default();
            let sample = SampleOrder::placed(APPROVED_TOKEN);
            sample.store_in(&store).await.unwrap();
            assert_eq!(
                token(&store, &sample).await.as_deref(),
                Some(APPROVED_TOKEN)
            );

            let skipping = Transition {
                from: OrderStatus::Paid,
                to: OrderStatus::Confirmed,
                ..settle(&sample, to)
            };
            assert!(matches!(
                store.transition(&skipping).await.unwrap(),
                TransitionOutcome::NotAllowed { .. }
            ));
            assert_eq!(
                token(&store, &sample).await.as_deref(),
                Some(APPROVED_TOKEN)
            );

            let settling = settle(&sample, to);
            assert!(settling.settles_payment());
            assert_eq!(
                store.transition(&settling).await.unwrap(),
                TransitionOutcome::Applied
            );
            assert_eq!(token(&store, &sample).await, None, "{to}");
            let order = store.get(sample.order.order_id).await.unwrap().unwrap();
            assert_eq!(order.status, to);
        }
    }

    #[test]
    fn only_the_way_out_of_pending_settles_the_payment() {
        let sample = SampleOrder::placed(APPROVED_TOKEN);
        for (from, to) in TRANSITIONS {
            let transition = Transition {
                from: *from,
                ..settle(&sample, *to)
            };
            assert_eq!(
                transition.settles_payment(),
                *to == OrderStatus::Paid || *to == OrderStatus::PaymentFailed,
                "{from} -> {to}"
            );
        }
    }
}
