//! Idempotency: doing a side effect at most once per key, however often it is asked for.
//!
//! At-least-once delivery and client retries mean every request or message may arrive
//! twice, concurrently, or long after the first copy. The protocol:
//!
//! 1. **Claim** the key with a conditional write that stores it as `INPROGRESS`, with the
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
//! Records carry a TTL (`expiration`) so the table does not grow forever; since DynamoDB
//! deletes expired items hours late, expiry is also checked here, in code.
//!
//! Every answer to "have we seen this key before?" is one [`Seen`]: the API's judgement
//! of a stored record, a consumer's claim, and [`Idempotency::once`] all speak it.
//!
//! ## When to claim, and when the effect's own conditions are enough
//!
//! A claim costs two writes per event (claim, complete), so it is used only where
//! nothing else can stop a second effect. The rule every function follows:
//!
//! - **The effect is a DynamoDB write**: no claim. Make the write conditional on the
//!   state it changes (the order's status, a record that exists once per order) and
//!   derive the ids of the events it stores from the event that caused it, so a
//!   replay's transaction is cancelled by its own conditions and changes nothing.
//!   Inventory does this. The API, whose client's key must replay the first answer,
//!   writes its `COMPLETED` record in the same transaction as the order it places.
//! - **The effect leaves DynamoDB, but its receiver deduplicates by a key you give it**
//!   (a payment provider's idempotency key): no claim either. Derive the key from what
//!   must happen once (`charge-<order id>`), check the state before calling (only a
//!   PENDING order is charged), and make the state change conditional, as above. A
//!   repeat gets the first answer back from the receiver. Payment does this.
//! - **The effect leaves DynamoDB and nothing downstream deduplicates** (an SNS
//!   publish, an email): claim the key first with [`Idempotency::once`]. Nothing else
//!   can stop a second email, because the effect cannot be part of a DynamoDB
//!   condition. Notification does this.

mod protocol;
mod record;
mod store;

pub use protocol::Idempotency;
pub use record::{
    DEFAULT_IN_PROGRESS, DEFAULT_TTL, IdempotencyRecord, IdempotencyStatus, MAX_IN_PROGRESS, Seen,
    fingerprint, in_progress_window, invocation_deadline, judge,
};
pub use store::{IdempotencyStore, InMemoryIdempotencyStore, PutIfAbsent};
