//! The ports: what the domain needs from the outside world, as traits.
//!
//! Handlers depend on these traits, not on SDK clients, so their logic can be unit-tested
//! with in-memory fakes, while the integration tests run the DynamoDB and SNS
//! [`crate::adapters`] against the emulator.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::events::Envelope;
use crate::idempotency::IdempotencyRecord;
use crate::ids::OrderId;
use crate::order::{Order, OrderStatus};

/// A store failed. Transient and permanent failures are different types of error, not
/// different strings: callers retry the first and give up on the second.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// Throttling, a timeout, a conflict, an outage: retrying later may succeed.
    #[error("transient store failure: {0}")]
    Transient(String),
    /// A bug, missing permission, missing table, or corrupt data: retrying cannot help.
    #[error("permanent store failure: {0}")]
    Permanent(String),
}

impl StoreError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }
}

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
    AlreadyApplied,
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
    ) -> impl Future<Output = Result<PlaceOutcome, StoreError>> + Send;

    /// Moves an order from one status to the next and stores the events announcing it,
    /// in one transaction: no state change without its events, no events without it.
    fn transition(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = Result<TransitionOutcome, StoreError>> + Send;

    /// Reads an order; `None` if there is no such order.
    fn get(&self, id: OrderId) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;
}

/// Most events one [`EventPublisher::publish_batch`] call takes (SNS's `PublishBatch` limit).
pub const PUBLISH_BATCH_LIMIT: usize = 10;

/// One event to publish: its routing attributes and its body, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// The event's type: subscriptions filter on it.
    pub event_type: &'a str,
    /// The correlation id, carried as an attribute for tracing.
    pub correlation_id: &'a str,
    /// The envelope, verbatim.
    pub body: &'a str,
}

/// Publishes an event to the order-events topic.
pub trait EventPublisher: Send + Sync {
    /// Publishes one event with its routing attributes. At-least-once: a retry after a
    /// lost acknowledgement publishes it again, and consumers deduplicate on its id.
    fn publish(
        &self,
        event_type: &str,
        correlation_id: &str,
        body: &str,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Publishes up to [`PUBLISH_BATCH_LIMIT`] events and answers one result per event, in
    /// order. One request for several events is cheaper and lighter on the topic than one
    /// each, which matters to the relay when a stream batch holds many. This default
    /// publishes one at a time and stops at the first failure: the events after it are
    /// answered as not attempted.
    fn publish_batch(
        &self,
        events: &[Outgoing<'_>],
    ) -> impl Future<Output = Vec<Result<(), PublishError>>> + Send {
        async move {
            let mut results: Vec<Result<(), PublishError>> = Vec::with_capacity(events.len());
            for event in events {
                let result = if results.iter().any(Result::is_err) {
                    Err(PublishError::Transient(
                        "not attempted: an earlier event of the batch failed".into(),
                    ))
                } else {
                    self.publish(event.event_type, event.correlation_id, event.body)
                        .await
                };
                results.push(result);
            }
            results
        }
    }
}

/// Publishing failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    /// Throttling, a timeout, an outage: retry.
    #[error("transient publish failure: {0}")]
    Transient(String),
    /// Missing topic, missing permission, invalid message: retrying cannot help.
    #[error("permanent publish failure: {0}")]
    Permanent(String),
}

/// Records which side effects have been done, so a repeated request or message does not
/// do them again. See [`crate::idempotency`] for the protocol built on it.
pub trait IdempotencyStore: Send + Sync {
    /// Reads a record with a strongly consistent read; expired records are returned too
    /// (callers decide with [`IdempotencyRecord::is_expired`]).
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;

    /// Writes `record` only if there is no live record under its key: none at all, one
    /// whose TTL has passed, or an in-progress one whose holder ran out of time.
    /// Returns `false` (and writes nothing) when a live record exists.
    fn put_if_absent(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the in-progress record `claimed` with `done`, only if `claimed` still
    /// holds the key (same owner token). When it does not, our claim lapsed (a slow or
    /// stopped invocation) and another invocation took the key: that is a transient
    /// error, because the message's retry replays whatever the other claimant completes,
    /// or runs again if it gave the key up. A permanent error here would send to the DLQ
    /// a message whose work was done.
    fn complete(
        &self,
        claimed: &IdempotencyRecord,
        done: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the in-progress record `claimed` after a failure, so a retry can take the
    /// key again; does nothing if another claim holds the key now, or it was completed.
    fn release(
        &self,
        claimed: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
