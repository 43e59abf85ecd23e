//! Reading DynamoDB's answers: an SDK error as the store's transient/permanent split, a
//! cancelled transaction item by item (by the names [`crate::Transaction`] gave them),
//! and the retry of a transaction cancelled by contention.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use domain::failure::Failure;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;

/// A cancelled `TransactWriteItems`, read item by item, each item by its name.
///
/// DynamoDB cancels a transaction for very different reasons, one code per item: a
/// condition that failed (`ConditionalCheckFailed`: a fact about the data, which the
/// caller interprets), another transaction on the same item (`TransactionConflict`),
/// throttling (`ThrottlingError`, `ProvisionedThroughputExceeded`), or a request that
/// can never succeed (`ValidationError`, `ItemCollectionSizeLimitExceeded`). Only the
/// first answers a question; contention is worth another try; the rest are bugs.
/// The SDK does not retry a cancelled transaction itself, so callers must tell these
/// apart: reading "any code" as "already done" drops work on a busy day.
///
/// DynamoDB answers by position; a [`crate::Transaction`] gives each item a name when it
/// is added, and this pairs each code with that name. Callers ask about `"reservation"`
/// or `"stock:SKU-MUG"`, so adding an item to a transaction cannot shift what another
/// caller's index points at.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancellation {
    reasons: Vec<(String, Option<String>)>,
    /// The stored items that failed a condition, by name, where the item asked for
    /// them (`ReturnValuesOnConditionCheckFailure=ALL_OLD`).
    images: Vec<(String, HashMap<String, AttributeValue>)>,
}

/// Cancellation codes that mean "the same transaction may succeed if tried again".
const CONTENTION_CODES: &[&str] = &[
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

impl Cancellation {
    /// The cancellation inside `error`, its reasons named by `names` (the transaction's
    /// items, in the order they were sent), or `None` if the error is something else.
    /// A reason past the last name is named by its position, `#<index>`.
    pub fn of<R>(error: &SdkError<TransactWriteItemsError, R>, names: &[String]) -> Option<Self> {
        match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                let name = |index: usize| {
                    names
                        .get(index)
                        .cloned()
                        .unwrap_or_else(|| format!("#{index}"))
                };
                let reasons = cancelled.cancellation_reasons();
                Some(Self {
                    reasons: reasons
                        .iter()
                        .enumerate()
                        .map(|(index, reason)| {
                            let code = reason.code().filter(|c| *c != "None").map(str::to_owned);
                            (name(index), code)
                        })
                        .collect(),
                    images: reasons
                        .iter()
                        .enumerate()
                        .filter_map(|(index, reason)| {
                            reason.item().map(|item| (name(index), item.clone()))
                        })
                        .collect(),
                })
            }
            _ => None,
        }
    }

    /// A cancellation with these named per-item codes (`None` for an item that was fine).
    pub fn from_codes<'a, N: Into<String>>(
        reasons: impl IntoIterator<Item = (N, Option<&'a str>)>,
    ) -> Self {
        Self {
            reasons: reasons
                .into_iter()
                .map(|(name, code)| (name.into(), code.map(str::to_owned)))
                .collect(),
            images: Vec::new(),
        }
    }

    /// The stored item whose condition failed under `name`, as DynamoDB returned it for
    /// an item sent with `ReturnValuesOnConditionCheckFailure=ALL_OLD`: what the
    /// transaction ran into, read in the same request.
    pub fn image(&self, name: &str) -> Option<&HashMap<String, AttributeValue>> {
        self.images
            .iter()
            .find(|(named, _)| named == name)
            .map(|(_, item)| item)
    }

    fn code(&self, name: &str) -> Option<&str> {
        self.reasons
            .iter()
            .find(|(named, _)| named == name)
            .and_then(|(_, code)| code.as_deref())
    }

    /// Whether the condition of the item named `name` failed.
    pub fn condition_failed(&self, name: &str) -> bool {
        self.code(name) == Some("ConditionalCheckFailed")
    }

    /// Whether the item named `name` is being written by another transaction right now.
    pub fn conflicted(&self, name: &str) -> bool {
        self.code(name) == Some("TransactionConflict")
    }

    /// The names of the items whose condition failed, in the transaction's order.
    pub fn failed_conditions(&self) -> impl Iterator<Item = &str> {
        self.reasons
            .iter()
            .filter(|(_, code)| code.as_deref() == Some("ConditionalCheckFailed"))
            .map(|(name, _)| name.as_str())
    }

    /// Whether the transaction was cancelled only by contention (a concurrent
    /// transaction, throttling): the same transaction may succeed if tried again.
    pub fn is_contention(&self) -> bool {
        let mut codes = self
            .reasons
            .iter()
            .filter_map(|(_, code)| code.as_deref())
            .peekable();
        codes.peek().is_some() && codes.all(|code| CONTENTION_CODES.contains(&code))
    }

    /// The store error for a cancellation no failed condition explains: transient when
    /// it was contention, permanent otherwise (a request DynamoDB will never accept).
    pub fn into_error(self, operation: &str) -> Failure {
        let message = format!("{operation}: transaction cancelled: {self}");
        if self.is_contention() {
            Failure::Transient(message)
        } else {
            Failure::Permanent(message)
        }
    }
}

/// The items that were not fine, as `name: code`, for logs and error messages.
impl std::fmt::Display for Cancellation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (name, code) in &self.reasons {
            if let Some(code) = code {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{name}: {code}")?;
                first = false;
            }
        }
        if first {
            f.write_str("no reason given")?;
        }
        Ok(())
    }
}

/// What one try of a transaction came to, for [`retry_contention`].
#[derive(Debug)]
pub enum Tried<T> {
    /// A final answer: success, or an error that another try here would not fix.
    Settled(Result<T, Failure>),
    /// Cancelled by contention: worth trying again after a pause.
    Contended(Cancellation),
}

/// How many times [`retry_contention`] tries a transaction within one invocation.
pub const CONTENTION_ATTEMPTS: u32 = 8;

/// How long after its first try [`retry_contention`] may start another. A try started
/// late still has its call's whole budget ([`crate::sdk::OPERATION_TIMEOUT`]), so the
/// loop's worst case is this, one pause, and one call: `tests/integration/retry_budget.rs`
/// checks that it fits every consumer's timeout.
pub const CONTENTION_WINDOW: Duration = Duration::from_secs(3);

/// The longest pause between two tries of [`retry_contention`].
pub const CONTENTION_MAX_PAUSE: Duration = Duration::from_millis(CAP_MS);

const BASE_MS: u64 = 20;
const CAP_MS: u64 = 640;

/// Runs `attempt` until it settles, pausing between tries that contention cancelled,
/// and gives up with a transient error after [`CONTENTION_ATTEMPTS`] tries or once
/// [`CONTENTION_WINDOW`] has passed, whichever comes first.
///
/// Many orders for one hot SKU all update that SKU's item, and DynamoDB cancels all
/// but one of the transactions that overlap. Handing each loser back to SQS would cost
/// it a visibility timeout (a minute) out of its few receives, and in a sale send paid
/// orders to the DLQ. A short retry here, with "full jitter" (each pause random up to
/// an exponentially growing cap, as AWS's architecture blog recommends), spreads the
/// losers out so they mostly succeed within the same invocation: at most about two
/// seconds of pauses in all. The window keeps slow tries from adding up past the
/// function's timeout: Lambda would kill the invocation mid-try instead.
pub async fn retry_contention<T, F, Fut>(operation: &str, mut attempt: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Tried<T>>,
{
    let started = Instant::now();
    let mut last = None;
    for n in 0..CONTENTION_ATTEMPTS {
        if n > 0 {
            let ceiling = (BASE_MS << n.min(10)).min(CAP_MS);
            let pause = Duration::from_millis(fastrand::u64(0..=ceiling));
            if started.elapsed() + pause > CONTENTION_WINDOW {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        match attempt().await {
            Tried::Settled(result) => return result,
            Tried::Contended(cancellation) => {
                tracing::debug!(attempt = n + 1, reasons = %cancellation, "{operation}: cancelled by contention; trying again");
                crate::metrics::count(crate::metrics::TRANSACTION_RETRIES);
                last = Some(cancellation);
            }
        }
    }
    Err(last.map_or_else(
        || Failure::Transient(format!("{operation}: no attempt made")),
        |cancellation| cancellation.into_error(operation),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancelled(reasons: &[(&str, &str)]) -> Cancellation {
        Cancellation::from_codes(
            reasons
                .iter()
                .map(|(name, code)| (*name, (*code != "None").then_some(*code))),
        )
    }

    #[test]
    fn conflicts_and_throttling_are_contention_never_a_failed_condition() {
        for code in [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ] {
            let c = cancelled(&[("key", "None"), ("order", code), ("event:1", "None")]);
            assert!(c.is_contention(), "{code}");
            assert!(
                ["key", "order", "event:1"]
                    .iter()
                    .all(|name| !c.condition_failed(name)),
                "{code}"
            );
            assert_eq!(c.failed_conditions().count(), 0, "{code}");
            assert!(c.into_error("t").is_transient(), "{code}");
        }
        assert!(cancelled(&[("order", "None"), ("key", "TransactionConflict")]).conflicted("key"));
    }

    #[test]
    fn validation_errors_are_permanent_and_conditions_are_read_by_name() {
        let invalid = cancelled(&[("order", "ValidationError"), ("key", "None")]);
        assert!(!invalid.is_contention());
        let error = invalid.into_error("t");
        assert!(!error.is_transient());
        assert!(
            error.to_string().contains("order: ValidationError"),
            "{error}"
        );
        let mixed = cancelled(&[
            ("stock:SKU-MUG", "ConditionalCheckFailed"),
            ("reservation", "TransactionConflict"),
        ]);
        assert!(mixed.condition_failed("stock:SKU-MUG") && !mixed.condition_failed("reservation"));
        assert!(!mixed.condition_failed("no such item"));
        assert_eq!(
            mixed.failed_conditions().collect::<Vec<_>>(),
            ["stock:SKU-MUG"]
        );
        assert!(
            !mixed.is_contention(),
            "a failed condition is an answer, not contention"
        );
        assert!(!cancelled(&[("key", "None"), ("order", "None")]).is_contention());
    }

    #[tokio::test]
    async fn contention_is_tried_again_until_it_settles_or_the_attempts_run_out() {
        let mut tries = 0;
        let settled = retry_contention("t", || {
            tries += 1;
            let n = tries;
            async move {
                if n < 3 {
                    Tried::Contended(cancelled(&[("order", "TransactionConflict")]))
                } else {
                    Tried::Settled(Ok(n))
                }
            }
        })
        .await;
        assert_eq!(settled, Ok(3));

        let mut tries = 0;
        let exhausted: Result<(), Failure> = retry_contention("t", || {
            tries += 1;
            async { Tried::Contended(cancelled(&[("order", "ThrottlingError")])) }
        })
        .await;
        assert!(exhausted.is_err_and(|e| e.is_transient()));
        assert_eq!(tries, CONTENTION_ATTEMPTS);
    }
}
