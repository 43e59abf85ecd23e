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
//! Every answer to "have we seen this key before?" is one [`Seen`]: the API's judgement
//! of a stored record, a consumer's claim, and [`Idempotency::once`] all speak it.
//!
//! ## When to claim, and when the effect's own condition is enough
//!
//! The rule every function follows:
//!
//! - **The effect leaves DynamoDB** (a payment provider, an email, an SNS publish):
//!   claim the key first with [`Idempotency::once`]. Nothing else can stop a second
//!   charge or a second email, because the effect cannot be part of a DynamoDB
//!   condition. Payment and notification do this.
//! - **The effect is a DynamoDB write**: no claim. Make the write conditional on the
//!   state it changes (the order's status, a record that exists once per order) and
//!   derive the ids of the events it stores from the event that caused it, so a
//!   replay's transaction is cancelled by its own conditions and changes nothing.
//!   Inventory does this, and the API writes its `COMPLETED` record in the same
//!   transaction as the order it places.
//!
//! The second costs no extra request and cannot be left half-done; the first is the
//! only way to make an outside effect happen once.

mod protocol;
mod record;
mod store;

pub use protocol::Idempotency;
pub use record::{
    DEFAULT_IN_PROGRESS, DEFAULT_TTL, IdempotencyRecord, IdempotencyStatus, MAX_IN_PROGRESS, Seen,
    fingerprint, in_progress_window, invocation_deadline, judge,
};
pub(crate) use store::key_is_free;
pub use store::{IdempotencyStore, InMemoryIdempotencyStore};
