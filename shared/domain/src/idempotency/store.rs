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
    /// (callers decide with [`IdempotencyRecord::is_expired`]).
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, Failure>> + Send;

    /// Writes `record` only if there is no live record under its key: none at all, one
    /// whose TTL has passed, or an in-progress one whose holder ran out of time.
    /// Returns `false` (and writes nothing) when a live record exists.
    fn put_if_absent(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> impl Future<Output = Result<bool, Failure>> + Send;

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

/// Idempotency records in a map: the fake for unit tests. It keeps the adapter's
/// rules (a conditional put, owner-checked complete and release), so a handler tested
/// against it behaves as it will against DynamoDB.
#[derive(Debug, Clone, Default)]
pub struct InMemoryIdempotencyStore {
    records: Arc<Mutex<HashMap<String, IdempotencyRecord>>>,
}

/// The adapter's condition for taking a key, in code: no record, an expired one, or an
/// abandoned claim. Shared with the fakes that take a key inside their own "transaction".
pub(crate) fn key_is_free(existing: Option<&IdempotencyRecord>, now: i64) -> bool {
    existing.is_none_or(|r| r.is_expired(now) || r.is_abandoned(now))
}

impl InMemoryIdempotencyStore {
    /// The records, locked: for a fake that checks a key and writes it together with its
    /// other effects, all or nothing, as a DynamoDB transaction does.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, IdempotencyRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The conditional put, synchronously, so `place` can do it under its own lock.
    pub(crate) fn take_key(&self, record: &IdempotencyRecord, now: i64) -> bool {
        let mut records = self.lock();
        if !key_is_free(records.get(&record.key), now) {
            return false;
        }
        records.insert(record.key.clone(), record.clone());
        true
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
    ) -> Result<bool, Failure> {
        Ok(self.take_key(record, now_epoch))
    }

    async fn complete(
        &self,
        claimed: &IdempotencyRecord,
        done: &IdempotencyRecord,
    ) -> Result<(), Failure> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        match records.get(&done.key) {
            Some(held) if held.is_held_by(claimed) => {
                records.insert(done.key.clone(), done.clone());
                Ok(())
            }
            _ => Err(Failure::Transient(format!(
                "idempotency key {} was claimed again after our claim lapsed; a retry will find what that claimant stores",
                done.key
            ))),
        }
    }

    async fn release(&self, claimed: &IdempotencyRecord) -> Result<(), Failure> {
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
