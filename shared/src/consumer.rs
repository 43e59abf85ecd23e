//! Processing an SQS batch the way every consumer in the pipeline must.
//!
//! - Records are processed concurrently, up to a bound.
//! - Each record is decoded with [`Envelope::decode`]; the handler sees typed events.
//! - A **transient** failure (throttling, an outage, a conflict) is reported in
//!   `batchItemFailures`, so SQS redelivers just that record after its visibility
//!   timeout, and after `maxReceiveCount` tries the queue's redrive policy moves it to
//!   the DLQ.
//! - A **permanent** failure (malformed JSON, unknown type, unreadable schema version,
//!   invalid payload, an event this consumer does not handle) can never succeed: it is
//!   logged at ERROR with its message id and reason, and forwarded to the queue's DLQ at
//!   once with the reason attached. It never blocks its batch, and it is never simply
//!   deleted: if the forward fails, it is reported as failed and redriven instead.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;

use crate::events::Envelope;

/// Why a record failed. The type, not a string, decides retry versus DLQ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// May succeed later: report it, SQS redelivers it.
    #[error("transient: {0}")]
    Transient(String),
    /// Can never succeed: straight to the DLQ with this reason.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<crate::ports::StoreError> for RecordError {
    fn from(error: crate::ports::StoreError) -> Self {
        if error.is_transient() {
            RecordError::Transient(error.to_string())
        } else {
            RecordError::Permanent(error.to_string())
        }
    }
}

/// The consumer's view of [`crate::idempotency::Idempotency::once`]: a duplicate is a
/// success (its effect happened already), a busy key is retried later, a key reused
/// with different content is poison.
pub fn once_outcome(
    outcome: Result<crate::idempotency::Once, crate::idempotency::OnceError<RecordError>>,
) -> Result<(), RecordError> {
    use crate::idempotency::{Once, OnceError};
    match outcome {
        Ok(Once::Ran) => Ok(()),
        Ok(Once::AlreadyDone) => {
            tracing::info!("duplicate event suppressed");
            crate::metrics::count(crate::metrics::DUPLICATES_SUPPRESSED);
            Ok(())
        }
        Ok(Once::Busy { .. }) => Err(RecordError::Transient(
            "another invocation is handling this event".into(),
        )),
        Ok(Once::Conflict) => Err(RecordError::Permanent(
            "an event with this id but different content was already handled".into(),
        )),
        Err(OnceError::Store(error)) => Err(error.into()),
        Err(OnceError::Work(error)) => Err(error),
    }
}

/// The payload hash a consumer claims an event's key with: the event's id alone.
///
/// An event id names one event for ever (a fresh UUID, or one derived from the event
/// that caused it), so the id *is* the content's identity. Hashing the envelope as this
/// build re-serialises it would not be: during a canary, or after a schema change, two
/// builds serialise the same event differently, and a handled event would read as "the
/// same key with different content" and go to the DLQ.
pub fn event_fingerprint(envelope: &Envelope) -> String {
    crate::hashing::fingerprint(envelope.id.to_string().as_bytes())
}

/// Where permanently failed records go: the consumer queue's DLQ.
pub trait DeadLetterSink: Send + Sync {
    /// Forwards the original body with the reason, keeping the message id for tracing.
    fn forward(
        &self,
        message: &SqsMessage,
        reason: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// An SQS consumer of order events. A consumer says what it does with one event, as a
/// `match` on it, and where its poison goes; the batch loop ([`process_batch`]) does
/// the rest, the same for every consumer: decoding, concurrency, partial batch
/// responses, the DLQ. Implementing this trait is what makes a type a Lambda function
/// that `shared::runtime::run` can run.
pub trait Consumer: Send + Sync {
    /// Where its poison messages go.
    type DeadLetters: DeadLetterSink;

    /// Its dead-letter sink.
    fn dead_letters(&self) -> &Self::DeadLetters;

    /// Handles one decoded event. `deadline` is the invocation's (epoch milliseconds,
    /// when Lambda gave one), which bounds how long an idempotency claim may block
    /// others.
    fn on_event(
        &self,
        envelope: Envelope,
        deadline: Option<i64>,
    ) -> impl Future<Output = Result<(), RecordError>> + Send;
}

impl<C: Consumer> crate::runtime::EventFunction<SqsEvent> for C {
    type Response = SqsBatchResponse;

    async fn handle(&self, event: lambda_runtime::LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let deadline = crate::idempotency::invocation_deadline(event.context.deadline);
        process_batch(
            event.payload,
            DEFAULT_CONCURRENCY,
            self.dead_letters(),
            |envelope| self.on_event(envelope, deadline),
        )
        .await
    }
}

/// The default bound on records processed at once: enough to overlap I/O, small enough
/// to stay gentle with downstreams.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Processes a batch and returns the partial batch response Lambda expects (with
/// `ReportBatchItemFailures` enabled on the mapping).
pub async fn process_batch<H, Fut, D>(
    event: SqsEvent,
    concurrency: usize,
    dead_letters: &D,
    handle: H,
) -> SqsBatchResponse
where
    H: Fn(Envelope) -> Fut,
    Fut: Future<Output = Result<(), RecordError>>,
    D: DeadLetterSink,
{
    let handle = &handle;
    let failures: Vec<BatchItemFailure> = futures::stream::iter(event.records)
        .map(|message| async move {
            let outcome = match Envelope::decode(message.body.as_deref().unwrap_or_default()) {
                Ok(envelope) => {
                    let span = tracing::info_span!(
                        "record",
                        message_id = message.message_id.as_deref().unwrap_or_default(),
                        event_id = %envelope.id,
                        event_type = %envelope.event_type(),
                        order_id = %envelope.order_id,
                        correlation_id = %envelope.correlation_id,
                    );
                    tracing::Instrument::instrument(handle(envelope), span).await
                }
                Err(error) => Err(RecordError::Permanent(error.to_string())),
            };
            settle(message, outcome, dead_letters).await
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

/// Decides a record's fate; `Some` means "report as failed".
async fn settle<D: DeadLetterSink>(
    message: SqsMessage,
    outcome: Result<(), RecordError>,
    dead_letters: &D,
) -> Option<BatchItemFailure> {
    let message_id = message.message_id.clone().unwrap_or_default();
    let failed = || {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message_id.clone();
        Some(failure)
    };
    match outcome {
        Ok(()) => None,
        Err(RecordError::Transient(reason)) => {
            tracing::warn!(message_id = %message_id, reason = %reason, "record failed transiently; SQS will redeliver it");
            failed()
        }
        Err(RecordError::Permanent(reason)) => {
            tracing::error!(message_id = %message_id, reason = %reason, "poison message: forwarding it to the DLQ");
            crate::metrics::count(crate::metrics::POISON_MESSAGES);
            match dead_letters.forward(&message, &reason).await {
                Ok(()) => None,
                Err(error) => {
                    tracing::error!(message_id = %message_id, error = %error, "forwarding to the DLQ failed; leaving it to the redrive policy");
                    failed()
                }
            }
        }
    }
}
