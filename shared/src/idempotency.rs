//! Idempotency: doing a side effect at most once per key, however often it is asked for.
//!
//! At-least-once delivery and client retries mean every request or message may arrive
//! twice, concurrently, or long after the first copy. The protocol:
//!
//! 1. **Claim** the key with a conditional write that stores it as `IN_PROGRESS`, with the
//!    hash of the payload and an in-progress expiry tied to the invocation's remaining
//!    time (so a crashed holder does not block the key forever).
//! 2. Do the side effect.
//! 3. **Complete**: store the result as `COMPLETED`. Later copies get the stored result
//!    back instead of repeating the effect; a copy with a different payload is refused.
//! 4. On failure, **release** the key so a retry can claim it again.
//!
//! Each claim carries an **owner** token, fresh per claim, and `complete` and `release`
//! are conditioned on it: a holder whose claim lapsed (it ran past its window) can
//! neither complete nor delete the claim of the invocation that took the key over. And
//! when the SDK retries a claim put whose first attempt landed but whose answer was lost,
//! the record found is recognised as ours, not as someone else's work in progress.
//!
//! Records carry a TTL (`expires_at`) so the table does not grow forever; since DynamoDB
//! deletes expired items hours late, expiry is also checked here, in code.
//!
//! When the only side effect is itself a DynamoDB write, claiming is unnecessary: write a
//! `COMPLETED` record in the same transaction as the effect (the order API does this).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ports::{IdempotencyStore, StoreError};

/// How long a completed key is remembered: retries after this are new requests.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest an invocation can hold a key: Lambda's maximum timeout.
pub const MAX_IN_PROGRESS: Duration = Duration::from_secs(15 * 60);

/// The in-progress window when the invocation's deadline is unknown or nonsensical (some
/// local runtimes send a fixed or past deadline).
pub const DEFAULT_IN_PROGRESS: Duration = Duration::from_secs(60);

/// Where a key is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IdempotencyStatus {
    /// Claimed; the side effect may be under way.
    InProgress,
    /// Done; `result` holds what to replay.
    Completed,
}

/// One key's record, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The key, prefixed with its scope (e.g. `create-order#<client key>`), so one table
    /// serves every function without collisions.
    pub key: String,
    /// Where the key is in the protocol.
    pub status: IdempotencyStatus,
    /// Hash of the payload the key was first used with.
    pub payload_hash: String,
    /// The stored outcome to replay (JSON text), once completed.
    pub result: Option<String>,
    /// While in progress: when (epoch seconds) the holder's time is up and the key may be
    /// claimed again.
    pub in_progress_until: Option<i64>,
    /// When (epoch seconds) the record stops counting; also the table's TTL attribute.
    pub expires_at: i64,
    /// While in progress: the token of the claim that holds it, so only that claim can
    /// complete or release it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl IdempotencyRecord {
    /// A fresh claim, with an owner token of its own.
    pub fn in_progress(key: String, payload_hash: String, now: i64, window: Duration) -> Self {
        Self {
            key,
            status: IdempotencyStatus::InProgress,
            payload_hash,
            result: None,
            in_progress_until: Some(now.saturating_add(secs(window))),
            expires_at: now.saturating_add(secs(DEFAULT_TTL)),
            owner: Some(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// A completed record with the result to replay.
    pub fn completed(key: String, payload_hash: String, result: String, now: i64) -> Self {
        Self {
            key,
            status: IdempotencyStatus::Completed,
            payload_hash,
            result: Some(result),
            in_progress_until: None,
            expires_at: now.saturating_add(secs(DEFAULT_TTL)),
            owner: None,
        }
    }

    /// Whether this is an in-progress claim held by `claim` (the same owner token).
    pub fn is_held_by(&self, claim: &IdempotencyRecord) -> bool {
        self.status == IdempotencyStatus::InProgress
            && self.owner.is_some()
            && self.owner == claim.owner
    }

    /// Past its TTL: treat as if absent, even if DynamoDB has not deleted it yet.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }

    /// In progress, but its holder's time ran out (it crashed or timed out).
    pub fn is_abandoned(&self, now: i64) -> bool {
        self.status == IdempotencyStatus::InProgress
            && self.in_progress_until.is_none_or(|until| until <= now)
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// How long a claim may stay in progress: the invocation's remaining time (plus a second
/// of slack), or [`DEFAULT_IN_PROGRESS`] when the deadline is missing, already past, or
/// further away than any Lambda invocation can last.
pub fn in_progress_window(deadline_epoch_ms: Option<i64>, now_epoch_ms: i64) -> Duration {
    let max_ms = i64::try_from(MAX_IN_PROGRESS.as_millis()).unwrap_or(i64::MAX);
    match deadline_epoch_ms.map(|deadline| deadline - now_epoch_ms) {
        Some(remaining) if remaining > 0 && remaining <= max_ms => {
            Duration::from_millis(remaining.unsigned_abs()) + Duration::from_secs(1)
        }
        _ => DEFAULT_IN_PROGRESS,
    }
}

/// The invocation's deadline as Lambda's context gives it (epoch milliseconds), or
/// `None` when it is unknown (0, as some local runtimes send).
pub fn invocation_deadline(deadline_epoch_ms: u64) -> Option<i64> {
    i64::try_from(deadline_epoch_ms).ok().filter(|d| *d > 0)
}

/// What an existing record means for a new request with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No live record: the key is free.
    Free,
    /// Done before with the same payload: replay this result.
    Replay(String),
    /// Someone is working on it now: retry after this many seconds.
    InProgress {
        /// Seconds until the holder's time is up.
        retry_after_seconds: u32,
    },
    /// The key was used with a different payload.
    Mismatch,
}

/// Judges an existing record against a new request. A pure function, so every rule of the
/// protocol is unit-tested without a database.
pub fn judge(existing: Option<&IdempotencyRecord>, payload_hash: &str, now: i64) -> Verdict {
    let Some(record) = existing else {
        return Verdict::Free;
    };
    if record.is_expired(now) || record.is_abandoned(now) {
        return Verdict::Free;
    }
    if record.payload_hash != payload_hash {
        return Verdict::Mismatch;
    }
    match (&record.status, &record.result) {
        (IdempotencyStatus::Completed, Some(result)) => Verdict::Replay(result.clone()),
        _ => Verdict::InProgress {
            retry_after_seconds: record
                .in_progress_until
                .map(|until| until.saturating_sub(now).clamp(1, 60))
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(1),
        },
    }
}

/// The outcome of trying to claim a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: do the side effect, then [`Idempotency::complete`] or
    /// [`Idempotency::release`].
    Acquired(IdempotencyRecord),
    /// Already done: here is the stored result.
    Replay(String),
    /// Another invocation holds the key right now.
    InProgress {
        /// Seconds until its time is up.
        retry_after_seconds: u32,
    },
    /// The key was used with a different payload.
    Mismatch,
}

/// What [`Idempotency::once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once {
    /// The work ran now and its result is stored.
    Ran,
    /// The work had run before: skipped (a duplicate suppressed).
    AlreadyDone,
    /// Another invocation is running it right now.
    Busy {
        /// Seconds until that invocation's time is up.
        retry_after_seconds: u32,
    },
    /// The key was used with a different payload: refused.
    Conflict,
}

/// Why [`Idempotency::once`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnceError<E> {
    /// The idempotency store failed.
    Store(StoreError),
    /// The work failed; its claim was released so a retry can run it.
    Work(E),
}

/// The claim/complete/release protocol over any [`IdempotencyStore`].
#[derive(Debug, Clone)]
pub struct Idempotency<S> {
    store: S,
}

impl<S: IdempotencyStore> Idempotency<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Tries to claim `key` for a payload. `deadline_epoch_ms` is the invocation's
    /// deadline (Lambda's context), which bounds how long the claim blocks others.
    pub async fn claim(
        &self,
        key: &str,
        payload_hash: &str,
        deadline_epoch_ms: Option<i64>,
        now_epoch_ms: i64,
    ) -> Result<Claim, StoreError> {
        let now = now_epoch_ms.div_euclid(1000);
        let window = in_progress_window(deadline_epoch_ms, now_epoch_ms);
        let record =
            IdempotencyRecord::in_progress(key.to_owned(), payload_hash.to_owned(), now, window);
        // A record can vanish (released, expired) between our failed write and our read;
        // then the key is free again and we simply try once more.
        for _ in 0..3 {
            if self.store.put_if_absent(&record, now).await? {
                return Ok(Claim::Acquired(record));
            }
            let existing = self.store.get(key).await?;
            if existing.as_ref().is_some_and(|e| e.is_held_by(&record)) {
                // Our own put landed on an earlier try whose answer was lost.
                return Ok(Claim::Acquired(record));
            }
            match judge(existing.as_ref(), payload_hash, now) {
                Verdict::Free => continue,
                Verdict::Replay(result) => return Ok(Claim::Replay(result)),
                Verdict::InProgress {
                    retry_after_seconds,
                } => {
                    return Ok(Claim::InProgress {
                        retry_after_seconds,
                    });
                }
                Verdict::Mismatch => return Ok(Claim::Mismatch),
            }
        }
        Ok(Claim::InProgress {
            retry_after_seconds: 1,
        })
    }

    /// Stores the result of a claimed key; later copies replay it.
    pub async fn complete(
        &self,
        claimed: &IdempotencyRecord,
        result: String,
        now_epoch: i64,
    ) -> Result<(), StoreError> {
        let done = IdempotencyRecord::completed(
            claimed.key.clone(),
            claimed.payload_hash.clone(),
            result,
            now_epoch,
        );
        self.store.complete(claimed, &done).await
    }

    /// Gives a claimed key back after a failure, so a retry can claim it.
    pub async fn release(&self, claimed: &IdempotencyRecord) -> Result<(), StoreError> {
        self.store.release(claimed).await
    }

    /// The whole protocol around one side effect: claim `key`, run `work`, store its
    /// result (or release the key if it failed). `work` runs at most once per key and
    /// payload, however often this is called.
    pub async fn once<F, Fut, E>(
        &self,
        key: &str,
        payload_hash: &str,
        deadline_epoch_ms: Option<i64>,
        work: F,
    ) -> Result<Once, OnceError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, E>>,
    {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let claimed = match self
            .claim(key, payload_hash, deadline_epoch_ms, now_ms)
            .await
            .map_err(OnceError::Store)?
        {
            Claim::Acquired(record) => record,
            Claim::Replay(_) => return Ok(Once::AlreadyDone),
            Claim::InProgress {
                retry_after_seconds,
            } => {
                return Ok(Once::Busy {
                    retry_after_seconds,
                });
            }
            Claim::Mismatch => return Ok(Once::Conflict),
        };
        match work().await {
            Ok(result) => {
                self.complete(&claimed, result, chrono::Utc::now().timestamp())
                    .await
                    .map_err(OnceError::Store)?;
                Ok(Once::Ran)
            }
            Err(error) => {
                if let Err(release) = self.release(&claimed).await {
                    // Not fatal: the claim expires with the invocation's deadline.
                    tracing::warn!(error = %crate::error_chain::ErrorChain(&release), key, "releasing an idempotency claim failed");
                }
                Err(OnceError::Work(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn completed(hash: &str) -> IdempotencyRecord {
        IdempotencyRecord::completed("k".into(), hash.into(), "{\"ok\":1}".into(), NOW)
    }

    #[test]
    fn completed_records_replay_for_the_same_payload_only() {
        let record = completed("h1");
        assert_eq!(
            judge(Some(&record), "h1", NOW + 10),
            Verdict::Replay("{\"ok\":1}".into())
        );
        assert_eq!(judge(Some(&record), "h2", NOW + 10), Verdict::Mismatch);
        assert_eq!(judge(None, "h1", NOW), Verdict::Free);
    }

    #[test]
    fn expired_records_count_as_absent_even_before_ttl_deletion() {
        let record = completed("h1");
        assert_eq!(
            judge(Some(&record), "h2", record.expires_at),
            Verdict::Free,
            "an expired key may be reused with any payload"
        );
    }

    #[test]
    fn in_progress_records_block_until_their_window_ends() {
        let record =
            IdempotencyRecord::in_progress("k".into(), "h1".into(), NOW, Duration::from_secs(30));
        assert_eq!(
            judge(Some(&record), "h1", NOW + 5),
            Verdict::InProgress {
                retry_after_seconds: 25
            }
        );
        assert_eq!(judge(Some(&record), "h1", NOW + 30), Verdict::Free);
    }

    #[test]
    fn the_in_progress_window_follows_the_deadline_within_sane_bounds() {
        let now_ms = NOW * 1000;
        assert_eq!(
            in_progress_window(Some(now_ms + 2_500), now_ms),
            Duration::from_millis(3_500)
        );
        assert_eq!(in_progress_window(None, now_ms), DEFAULT_IN_PROGRESS);
        assert_eq!(
            in_progress_window(Some(now_ms - 1), now_ms),
            DEFAULT_IN_PROGRESS,
            "a deadline in the past"
        );
        assert_eq!(
            in_progress_window(Some(now_ms + 3_600_000), now_ms),
            DEFAULT_IN_PROGRESS,
            "an hour is longer than any Lambda invocation"
        );
    }
}
