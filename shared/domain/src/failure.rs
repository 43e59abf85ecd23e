//! One vocabulary for failure: worth another try, or never.
//!
//! Every port (the order store, the publisher, the idempotency store, the payment
//! provider, the dead-letter queue) and every handler fails with this one type, so a
//! failure keeps its meaning on its way up without a conversion at each layer: a
//! throttled write inside payment is the same `Transient` when the batch loop reads it
//! and reports the record for redelivery. Which AWS errors are which is decided in one
//! place, `aws_adapters::sdk::failure`, from the SDK's own retry classification.

/// A failed step, and whether trying it again may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Throttling, a timeout, a conflict, an outage, a busy key: trying again later may
    /// succeed. An HTTP function answers 503 with `Retry-After`; a consumer reports the
    /// record, and SQS redelivers it after its visibility timeout.
    #[error("transient: {0}")]
    Transient(String),
    /// A bug, a missing permission or resource, input that can never be valid: trying
    /// again cannot help. An HTTP function answers 500; a consumer sends the message to
    /// its dead-letter queue at once, with this reason.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl Failure {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient(_))
    }
}
