//! The dead-letter port, and its in-memory fake.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use crate::failure::Failure;

/// A message that can never be processed, on its way to a dead-letter queue: kept
/// whole, with why, so an operator can read the reason, fix the cause and redrive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The id it had where it came from (the SQS message id, the stream record's event
    /// id), so the DLQ entry can be matched with the consumer's ERROR line.
    pub original_id: Option<String>,
    /// Its body, verbatim.
    pub body: String,
    /// Its string attributes (the event type, the correlation id), kept for the redrive.
    pub attributes: Vec<(String, String)>,
    /// Why it can never be processed.
    pub reason: String,
}

/// Where messages that can never be processed go: a consumer queue's DLQ, or the
/// relay's. A poison message is forwarded here at once, rather than retried until its
/// queue gives up on it, so it never blocks its batch and is never silently dropped.
pub trait DeadLetterSink: Send + Sync {
    /// Forwards one dead letter.
    fn forward(&self, letter: &DeadLetter) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// Dead letters in memory: the fake for unit tests. Set `fail_with` to make forwarding
/// fail, as an unreachable queue would.
#[derive(Debug, Clone, Default)]
pub struct InMemoryDeadLetters {
    letters: Arc<Mutex<Vec<DeadLetter>>>,
    /// When set, every forward fails with this.
    pub fail_with: Option<Failure>,
}

impl InMemoryDeadLetters {
    /// Every letter forwarded so far, in order.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl DeadLetterSink for InMemoryDeadLetters {
    async fn forward(&self, letter: &DeadLetter) -> Result<(), Failure> {
        if let Some(failure) = &self.fail_with {
            return Err(failure.clone());
        }
        self.letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(letter.clone());
        Ok(())
    }
}
