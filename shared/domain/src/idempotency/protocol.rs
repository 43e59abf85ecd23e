//! The claim/complete/release protocol, over any [`IdempotencyStore`].

use crate::failure::Failure;

use super::record::{IdempotencyRecord, Seen, in_progress_window, judge};
use super::store::{IdempotencyStore, PutIfAbsent};

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
        validation: &str,
        deadline_epoch_ms: Option<i64>,
        now_epoch_ms: i64,
    ) -> Result<Seen<IdempotencyRecord>, Failure> {
        let now = now_epoch_ms.div_euclid(1000);
        let window = in_progress_window(deadline_epoch_ms, now_epoch_ms);
        let record = IdempotencyRecord::in_progress(
            key.to_owned(),
            validation.to_owned(),
            now_epoch_ms,
            window,
        );
        // The live record comes back with the refusal; should our clock call it free
        // (DynamoDB's did not), we simply try once more.
        for _ in 0..3 {
            let existing = match self.store.put_if_absent(&record, now).await? {
                PutIfAbsent::Written => return Ok(Seen::New(record)),
                PutIfAbsent::Live(existing) => existing,
            };
            if existing.is_held_by(&record) {
                // Our own put landed on an earlier try whose answer was lost.
                return Ok(Seen::New(record));
            }
            match judge(Some(&existing), validation, now) {
                Seen::New(()) => continue,
                Seen::AlreadyDone(result) => return Ok(Seen::AlreadyDone(result)),
                Seen::Busy {
                    retry_after_seconds,
                } => {
                    return Ok(Seen::Busy {
                        retry_after_seconds,
                    });
                }
                Seen::Mismatch => return Ok(Seen::Mismatch),
            }
        }
        Ok(Seen::Busy {
            retry_after_seconds: 1,
        })
    }

    /// Stores the result of a claimed key; later copies replay it.
    pub async fn complete(
        &self,
        claimed: &IdempotencyRecord,
        result: String,
        now_epoch: i64,
    ) -> Result<(), Failure> {
        let done = IdempotencyRecord::completed(
            claimed.id.clone(),
            claimed.validation.clone(),
            result,
            now_epoch,
        );
        self.store.complete(claimed, &done).await
    }

    /// Gives a claimed key back after a failure, so a retry can claim it.
    pub async fn release(&self, claimed: &IdempotencyRecord) -> Result<(), Failure> {
        self.store.release(claimed).await
    }

    /// The whole protocol around one side effect: claim `key`, run `work`, store its
    /// result (or release the key if it failed). `work` runs at most once per key and
    /// payload, however often this is called. `Seen::New` carries the result of a run
    /// that happened now; the other answers mean `work` did not run.
    pub async fn once<F, Fut>(
        &self,
        key: &str,
        validation: &str,
        deadline_epoch_ms: Option<i64>,
        work: F,
    ) -> Result<Seen<String>, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, Failure>>,
    {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let claimed = match self
            .claim(key, validation, deadline_epoch_ms, now_ms)
            .await?
        {
            Seen::New(record) => record,
            Seen::AlreadyDone(result) => return Ok(Seen::AlreadyDone(result)),
            Seen::Busy {
                retry_after_seconds,
            } => {
                return Ok(Seen::Busy {
                    retry_after_seconds,
                });
            }
            Seen::Mismatch => return Ok(Seen::Mismatch),
        };
        match work().await {
            Ok(result) => {
                self.complete(&claimed, result.clone(), chrono::Utc::now().timestamp())
                    .await?;
                Ok(Seen::New(result))
            }
            Err(error) => {
                if let Err(release) = self.release(&claimed).await {
                    // Not fatal: the claim expires with the invocation's deadline.
                    tracing::warn!(error = %crate::error_chain::ErrorChain(&release), key, "releasing an idempotency claim failed");
                }
                Err(error)
            }
        }
    }
}
