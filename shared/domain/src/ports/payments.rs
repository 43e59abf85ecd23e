//! The payment provider port, and its in-memory fake.
//!
//! Payment knows only this trait; its simulated provider implements it on DynamoDB, and
//! a real one (Stripe, Adyen) would too, with the same idempotency-key contract those
//! providers offer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use crate::failure::Failure;
use crate::money::Money;

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
    ) -> impl Future<Output = Result<ChargeOutcome, Failure>> + Send;

    /// Refunds `amount` of `charge_id`.
    fn refund(
        &self,
        idempotency_key: &str,
        charge_id: &str,
        amount: Money,
    ) -> impl Future<Output = Result<Refund, Failure>> + Send;
}

/// A provider in memory: the fake for unit tests. Like a real provider it answers a
/// repeated idempotency key with the first answer and never charges twice. It declines
/// the token `tok_decline`; set `fail_with` to make every call fail, as an outage or a
/// revoked API key would.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPaymentGateway {
    charges: Arc<Mutex<HashMap<String, (ChargeOutcome, Money)>>>,
    refunds: Arc<Mutex<HashMap<String, (Refund, Money)>>>,
    /// When set, every call fails with this.
    pub fail_with: Option<Failure>,
}

impl InMemoryPaymentGateway {
    /// The money actually taken: approved charges minus refunds, in minor units.
    pub fn net_charged_minor(&self) -> i128 {
        let charged: i128 = self
            .charges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|(outcome, _)| matches!(outcome, ChargeOutcome::Approved(_)))
            .map(|(_, amount)| i128::from(amount.amount_minor))
            .sum();
        let refunded: i128 = self
            .refunds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|(_, amount)| i128::from(amount.amount_minor))
            .sum();
        charged - refunded
    }

    /// How many distinct charges were asked for (one per idempotency key).
    pub fn charge_count(&self) -> usize {
        self.charges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl PaymentGateway for InMemoryPaymentGateway {
    async fn charge(
        &self,
        idempotency_key: &str,
        amount: Money,
        token: &str,
    ) -> Result<ChargeOutcome, Failure> {
        if let Some(failure) = &self.fail_with {
            return Err(failure.clone());
        }
        let mut charges = self.charges.lock().unwrap_or_else(PoisonError::into_inner);
        let (outcome, _) = charges
            .entry(idempotency_key.to_owned())
            .or_insert_with(|| {
                let outcome = if token == "tok_decline" {
                    ChargeOutcome::Declined {
                        reason: "card declined".into(),
                    }
                } else {
                    ChargeOutcome::Approved(Charge {
                        charge_id: format!("ch_{idempotency_key}"),
                    })
                };
                (outcome, amount)
            });
        Ok(outcome.clone())
    }

    async fn refund(
        &self,
        idempotency_key: &str,
        _charge_id: &str,
        amount: Money,
    ) -> Result<Refund, Failure> {
        if let Some(failure) = &self.fail_with {
            return Err(failure.clone());
        }
        let mut refunds = self.refunds.lock().unwrap_or_else(PoisonError::into_inner);
        let (refund, _) = refunds
            .entry(idempotency_key.to_owned())
            .or_insert_with(|| {
                (
                    Refund {
                        refund_id: format!("re_{idempotency_key}"),
                    },
                    amount,
                )
            });
        Ok(refund.clone())
    }
}
