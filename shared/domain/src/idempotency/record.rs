//! One key's record, and the pure rules that judge it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The payload hash a key is claimed with (hex SHA-256), for telling "the same request
/// again" from "a different request reusing the key". Callers hash a canonical serialisation (the parsed request
/// re-serialised), so whitespace or key order in the client's JSON does not matter.
pub fn fingerprint(payload: &[u8]) -> String {
    Sha256::digest(payload)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// How long a completed key is remembered: retries after this are new requests.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest an invocation can hold a key: Lambda's maximum timeout.
pub const MAX_IN_PROGRESS: Duration = Duration::from_secs(15 * 60);

/// The in-progress window when the invocation's deadline is unknown or nonsensical (some
/// local runtimes send a fixed or past deadline).
pub const DEFAULT_IN_PROGRESS: Duration = Duration::from_secs(60);

/// Where a key is in the protocol, spelled as Powertools for AWS Lambda spells it, so a
/// team with Python or TypeScript functions can share the table and its runbooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdempotencyStatus {
    /// Claimed; the side effect may be under way.
    #[serde(rename = "INPROGRESS")]
    InProgress,
    /// Done; `data` holds what to replay.
    #[serde(rename = "COMPLETED")]
    Completed,
    /// Past its `expiration`: counts as absent. Never written by this code (as by
    /// Powertools, it is what [`IdempotencyRecord::status_at`] reports for a record TTL
    /// has not deleted yet), but read if another tool wrote it.
    #[serde(rename = "EXPIRED")]
    Expired,
}

/// One key's record, as stored: the attribute names of Powertools' DynamoDB persistence
/// layer (docs/architecture.md, "Idempotency records", lists the differences).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The key, prefixed with its scope (e.g. `create-order#<client key>`), so one table
    /// serves every function without collisions. The table's partition key.
    pub id: String,
    /// Where the key is in the protocol.
    pub status: IdempotencyStatus,
    /// Hash of the payload the key was first used with (see [`fingerprint`]).
    pub validation: String,
    /// The stored outcome to replay (JSON text), once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// While in progress: when (epoch **milliseconds**, as Powertools stores it) the
    /// holder's time is up and the key may be claimed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_expiration: Option<i64>,
    /// When (epoch seconds) the record stops counting; also the table's TTL attribute.
    pub expiration: i64,
    /// While in progress: the token of the claim that holds it, so only that claim can
    /// complete or release it. Not in Powertools' record; Powertools ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl IdempotencyRecord {
    /// A fresh claim, with an owner token of its own.
    pub fn in_progress(id: String, validation: String, now_ms: i64, window: Duration) -> Self {
        Self {
            id,
            status: IdempotencyStatus::InProgress,
            validation,
            data: None,
            // Whole seconds, as the condition compares it with the claimant's clock in
            // seconds: the claim never outlasts the window it was given. (Milliseconds
            // to the millisecond held a claim up to a second longer, past the span of a
            // message's receives that `make reliability` sizes to the window.)
            in_progress_expiration: Some(
                now_ms
                    .div_euclid(1000)
                    .saturating_add(secs(window))
                    .saturating_mul(1000),
            ),
            expiration: now_ms.div_euclid(1000).saturating_add(secs(DEFAULT_TTL)),
            owner: Some(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// A completed record with the result to replay.
    pub fn completed(id: String, validation: String, data: String, now: i64) -> Self {
        Self {
            id,
            status: IdempotencyStatus::Completed,
            validation,
            data: Some(data),
            in_progress_expiration: None,
            expiration: now.saturating_add(secs(DEFAULT_TTL)),
            owner: None,
        }
    }

    /// Whether this is an in-progress claim held by `claim` (the same owner token).
    pub fn is_held_by(&self, claim: &IdempotencyRecord) -> bool {
        self.status == IdempotencyStatus::InProgress
            && self.owner.is_some()
            && self.owner == claim.owner
    }

    /// The status as of `now` (epoch seconds): [`IdempotencyStatus::Expired`] once past
    /// its TTL, even if DynamoDB has not deleted it yet (it deletes hours late).
    pub fn status_at(&self, now: i64) -> IdempotencyStatus {
        if self.expiration <= now {
            IdempotencyStatus::Expired
        } else {
            self.status
        }
    }

    /// In progress, but its holder's time ran out (it crashed or timed out). A claim
    /// without an in-progress expiry (Powertools writes one when it has no Lambda
    /// context) holds until its `expiration`, as in Powertools' own condition.
    pub fn is_abandoned(&self, now: i64) -> bool {
        self.status == IdempotencyStatus::InProgress
            && self
                .in_progress_expiration
                .is_some_and(|until_ms| until_ms <= now.saturating_mul(1000))
    }

    /// Whether a new claim may take this record's key at `now`: it expired, or its
    /// holder ran out of time. The condition the DynamoDB adapter writes with.
    pub fn is_free(&self, now: i64) -> bool {
        self.status_at(now) == IdempotencyStatus::Expired || self.is_abandoned(now)
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

/// What the idempotency store knows about a key: the one answer to "have we seen this
/// before?", used by the API and by every consumer.
///
/// `T` is what a first sighting carries: nothing when judging a stored record
/// ([`judge`]), the claim when claiming ([`Idempotency::claim`](super::Idempotency::claim)),
/// the work's result when running it ([`Idempotency::once`](super::Idempotency::once)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<T> {
    /// Not seen, or its record lapsed: go ahead (or, for `once`, it just ran).
    New(T),
    /// Done before with the same payload: here is the stored result to replay.
    AlreadyDone(String),
    /// Another invocation holds the key right now.
    Busy {
        /// Seconds until the holder's time is up.
        retry_after_seconds: u32,
    },
    /// The key was used before with a different payload.
    Mismatch,
}

/// Judges an existing record against a new request. A pure function, so every rule of the
/// protocol is unit-tested without a database.
pub fn judge(existing: Option<&IdempotencyRecord>, validation: &str, now: i64) -> Seen<()> {
    let Some(record) = existing else {
        return Seen::New(());
    };
    if record.is_free(now) {
        return Seen::New(());
    }
    if record.validation != validation {
        return Seen::Mismatch;
    }
    match (&record.status, &record.data) {
        (IdempotencyStatus::Completed, Some(data)) => Seen::AlreadyDone(data.clone()),
        _ => Seen::Busy {
            retry_after_seconds: record
                .in_progress_expiration
                .map(|until_ms| until_ms.div_euclid(1000).saturating_sub(now).clamp(1, 60))
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(1),
        },
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
    fn fingerprints_are_hex_sha256() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn completed_records_replay_for_the_same_payload_only() {
        let record = completed("h1");
        assert_eq!(
            judge(Some(&record), "h1", NOW + 10),
            Seen::AlreadyDone("{\"ok\":1}".into())
        );
        assert_eq!(judge(Some(&record), "h2", NOW + 10), Seen::Mismatch);
        assert_eq!(judge(None, "h1", NOW), Seen::New(()));
    }

    #[test]
    fn expired_records_count_as_absent_even_before_ttl_deletion() {
        let record = completed("h1");
        assert_eq!(
            judge(Some(&record), "h2", record.expiration),
            Seen::New(()),
            "an expired key may be reused with any payload"
        );
    }

    #[test]
    fn in_progress_records_block_until_their_window_ends() {
        let record = IdempotencyRecord::in_progress(
            "k".into(),
            "h1".into(),
            NOW * 1000,
            Duration::from_secs(30),
        );
        assert_eq!(
            judge(Some(&record), "h1", NOW + 5),
            Seen::Busy {
                retry_after_seconds: 25
            }
        );
        assert_eq!(judge(Some(&record), "h1", NOW + 30), Seen::New(()));
    }

    #[test]
    fn records_are_stored_as_powertools_stores_them() {
        let claim = IdempotencyRecord::in_progress(
            "k".into(),
            "h1".into(),
            NOW * 1000 + 250,
            Duration::from_secs(30),
        );
        let stored = serde_json::to_value(&claim).unwrap();
        assert_eq!(stored["id"], "k");
        assert_eq!(stored["status"], "INPROGRESS");
        assert_eq!(stored["validation"], "h1");
        assert_eq!(
            stored["in_progress_expiration"],
            NOW * 1000 + 30_000,
            "milliseconds, as Powertools compares it with its :now_in_millis, in whole seconds"
        );
        assert_eq!(stored["expiration"], NOW + 24 * 60 * 60, "seconds, for TTL");
        let done = serde_json::to_value(completed("h1")).unwrap();
        assert_eq!(done["status"], "COMPLETED");
        assert_eq!(done["data"], "{\"ok\":1}");
        assert!(done.get("in_progress_expiration").is_none());
        let expired: IdempotencyStatus = serde_json::from_str("\"EXPIRED\"").unwrap();
        assert_eq!(expired, IdempotencyStatus::Expired);
    }

    #[test]
    fn a_record_past_its_expiration_reads_as_expired() {
        let record = completed("h1");
        assert_eq!(
            record.status_at(record.expiration - 1),
            IdempotencyStatus::Completed
        );
        assert_eq!(
            record.status_at(record.expiration),
            IdempotencyStatus::Expired
        );
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
