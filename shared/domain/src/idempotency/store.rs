//! The idempotency store port, and its in-memory fake.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::failure::Failure;

use super::record::IdempotencyRecord;

/// Records which side effects have been done, so a repeated request or message does not
/// do them again. See [`super::Idempotency`] for the protocol built on it.
pub trait IdempotencyStore: Send + Sync {
    /// Reads a record with a strongly consistent read; expired records are returned too
    /// (callers decide with [`IdempotencyRecord::status_at`]).
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, Failure>> + Send;

    /// Writes `record` only if there is no live record under its key: none at all, one
    /// whose TTL has passed, or an in-progress one whose holder ran out of time.
    /// When a live record exists it writes nothing and answers with that record, read
    /// in the same request (DynamoDB's `ReturnValuesOnConditionCheckFailure=ALL_OLD`),
    /// so a collision costs no second read.
    fn put_if_absent(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> impl Future<Output = Result<PutIfAbsent, Failure>> + Send;

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
    ) -> impl Future<Output = Result<(), Failure>> + Send;

    /// Deletes the in-progress record `claimed` after a failure, so a retry can take the
    /// key again; does nothing if another claim holds the key now, or it was completed.
    fn release(
        &self,
        claimed: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// What [`IdempotencyStore::put_if_absent`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutIfAbsent {
    /// The key was free; the record is stored.
    Written,
    /// A live record holds the key: this one, as stored. Nothing was written.
    Live(IdempotencyRecord),
}

/// Idempotency records in a map: the fake for unit tests. It keeps the adapter's
/// rules (a conditional put, owner-checked complete and release), so a handler tested
/// against it behaves as it will against DynamoDB.
#[derive(Debug, Clone, Default)]
pub struct InMemoryIdempotencyStore {
    records: Arc<Mutex<HashMap<String, IdempotencyRecord>>>,
}

impl InMemoryIdempotencyStore {
    /// The records, locked: for a fake that checks a key and writes it together with its
    /// other effects, all or nothing, as a DynamoDB transaction does.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, IdempotencyRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The conditional put, synchronously, so `place` can do it under its own lock.
    pub(crate) fn take_key(&self, record: &IdempotencyRecord, now: i64) -> PutIfAbsent {
        let mut records = self.lock();
        match records.get(&record.id) {
            Some(live) if !live.is_free(now) => PutIfAbsent::Live(live.clone()),
            _ => {
                records.insert(record.id.clone(), record.clone());
                PutIfAbsent::Written
            }
        }
    }
}

impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, Failure> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(records.get(key).cloned())
    }

    async fn put_if_absent(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> Result<PutIfAbsent, Failure> {
        Ok(self.take_key(record, now_epoch))
    }

    async fn complete(
        &self,
        claimed: &IdempotencyRecord,
        done: &IdempotencyRecord,
    ) -> Result<(), Failure> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        match records.get(&done.id) {
            Some(held) if held.is_held_by(claimed) => {
                records.insert(done.id.clone(), done.clone());
                Ok(())
            }
            _ => Err(Failure::Transient(format!(
                "idempotency key {} was claimed again after our claim lapsed; a retry will find what that claimant stores",
                done.id
            ))),
        }
    }

    async fn release(&self, claimed: &IdempotencyRecord) -> Result<(), Failure> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records
            .get(&claimed.id)
            .is_some_and(|held| held.is_held_by(claimed))
        {
            records.remove(&claimed.id);
        }
        Ok(())
    }
}
