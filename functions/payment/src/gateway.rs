//! The payment provider, as a port. The function only knows this trait; the simulated
//! provider in [`crate::simulated`] implements it, and a real one (Stripe, Adyen) would
//! too, with the same idempotency-key contract those providers offer.

use std::future::Future;

use shared::money::Money;

/// A charge the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The provider's id for it; a refund names it.
    pub charge_id: String,
}

/// The provider's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Money taken.
    Approved(Charge),
    /// The card was declined: a final answer, not an error.
    Declined {
        /// Why, in words fit for the customer.
        reason: String,
    },
}

/// A refund the provider made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The provider's id for it.
    pub refund_id: String,
}

/// The provider failed to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Timeout, 5xx, rate limit: retry with the same idempotency key.
    #[error("payment provider unavailable: {0}")]
    Transient(String),
    /// Bad credentials or a malformed request: retrying cannot help.
    #[error("payment provider refused the request: {0}")]
    Permanent(String),
}

/// A payment provider. Every call carries an idempotency key: calling twice with the
/// same key returns the first result and never moves money twice.
///
/// The key is derived from the order (`charge-<order id>`), and it must hold for the
/// order's whole life, not only for the provider's idempotency window. If the status
/// change after an approved charge keeps failing, the message is retried and, after its
/// receives, waits in the DLQ for a redrive that may come days later; the redriven charge
/// must find the first one. The simulated provider keeps its ledger for ever. A real
/// provider whose keys expire (Stripe's after 24 hours) must look the charge up by the
/// order reference first (Stripe: a search on the charge's metadata), and only charge
/// when there is none.
pub trait PaymentGateway: Send + Sync {
    /// Charges `amount` to the card behind `token`.
    fn charge(
        &self,
        idempotency_key: &str,
        amount: Money,
        token: &str,
    ) -> impl Future<Output = Result<ChargeOutcome, GatewayError>> + Send;

    /// Refunds `amount` of `charge_id`.
    fn refund(
        &self,
        idempotency_key: &str,
        charge_id: &str,
        amount: Money,
    ) -> impl Future<Output = Result<Refund, GatewayError>> + Send;
}
