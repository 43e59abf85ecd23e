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

use domain::failure::Failure;
use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;

use domain::events::Envelope;
use domain::idempotency::{Idempotency, IdempotencyStore, Seen};
use domain::ports::{DeadLetter, DeadLetterSink};

/// Runs `work` at most once per event for this consumer: the idempotency key
/// ([`event_key`]), the payload hash ([`event_fingerprint`]) and what each answer means
/// to a consumer, in one call.
///
/// Use it when the effect leaves DynamoDB (see the rule in [`domain::idempotency`]). A
/// duplicate is a success (its effect happened already), a key busy in another
/// invocation is retried later, and the same event id with other content is poison.
pub async fn once_per_event<S, F, Fut>(
    idempotency: &Idempotency<S>,
    consumer: &str,
    envelope: &Envelope,
    deadline: Option<i64>,
    work: F,
) -> Result<(), Failure>
where
    S: IdempotencyStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, Failure>>,
{
    let key = event_key(consumer, envelope);
    match idempotency
        .once(&key, &event_fingerprint(envelope), deadline, work)
        .await?
    {
        Seen::New(_) => Ok(()),
        Seen::AlreadyDone(_) => {
            tracing::info!("duplicate event suppressed");
            crate::metrics::count(crate::metrics::DUPLICATES_SUPPRESSED);
            Ok(())
        }
        Seen::Busy { .. } => Err(Failure::Transient(
            "another invocation is handling this event".into(),
        )),
        Seen::Mismatch => Err(Failure::Permanent(
            "an event with this id but different content was already handled".into(),
        )),
    }
}

/// The idempotency key of one event for one consumer: `<consumer>#<event id>`. Scoped
/// by consumer because every consumer handles the same event once, each on its own.
pub fn event_key(consumer: &str, envelope: &Envelope) -> String {
    format!("{consumer}#{}", envelope.id)
}

/// The payload hash a consumer claims an event's key with: the event's id alone.
///
/// An event id names one event for ever (a fresh UUID, or one derived from the event
/// that caused it), so the id *is* the content's identity. Hashing the envelope as this
/// build re-serialises it would not be: during a canary, or after a schema change, two
/// builds serialise the same event differently, and a handled event would read as "the
/// same key with different content" and go to the DLQ.
pub fn event_fingerprint(envelope: &Envelope) -> String {
    domain::idempotency::fingerprint(envelope.id.to_string().as_bytes())
}

/// An SQS consumer of order events. A consumer says what it does with one event, as a
/// `match` on it, and where its poison goes; the batch loop ([`process_batch`]) does
/// the rest, the same for every consumer: decoding, concurrency, partial batch
/// responses, the DLQ. Implementing this trait is what makes a type a Lambda function
/// that `aws_adapters::runtime::run` can run.
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
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

impl<C: Consumer> crate::runtime::EventFunction<SqsEvent> for C {
    type Response = SqsBatchResponse;

    async fn handle(&self, event: lambda_runtime::LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let deadline = domain::idempotency::invocation_deadline(event.context.deadline);
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
    Fut: Future<Output = Result<(), Failure>>,
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
                Err(error) => Err(Failure::Permanent(error.to_string())),
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
    outcome: Result<(), Failure>,
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
        Err(Failure::Transient(reason)) => {
            tracing::warn!(message_id = %message_id, reason = %reason, "record failed transiently; SQS will redeliver it");
            failed()
        }
        Err(Failure::Permanent(reason)) => {
            tracing::error!(message_id = %message_id, reason = %reason, "poison message: forwarding it to the DLQ");
            crate::metrics::count(crate::metrics::POISON_MESSAGES);
            match dead_letters.forward(&dead_letter(message, reason)).await {
                Ok(()) => None,
                Err(error) => {
                    tracing::error!(message_id = %message_id, error = %error, "forwarding to the DLQ failed; leaving it to the redrive policy");
                    failed()
                }
            }
        }
    }
}

/// A batch as Lambda delivers it from SQS, one message per `(message id, body)`, with a
/// default context (no deadline): for tests and local tools that drive a consumer's
/// `handle` without a queue. Through `handle` a test covers what a consumer's `on_event`
/// alone cannot: decoding, poison to the DLQ with its message id, and the partial batch
/// response.
pub fn sqs_batch(messages: &[(&str, &str)]) -> lambda_runtime::LambdaEvent<SqsEvent> {
    let mut batch = SqsEvent::default();
    batch.records = messages
        .iter()
        .map(|&(id, body)| {
            let mut message = SqsMessage::default();
            message.message_id = Some(id.to_owned());
            message.body = Some(body.to_owned());
            message
        })
        .collect();
    lambda_runtime::LambdaEvent::new(batch, lambda_runtime::Context::default())
}

/// An SQS message as a dead letter: its body, its id and its string attributes, kept.
fn dead_letter(message: SqsMessage, reason: String) -> DeadLetter {
    DeadLetter {
        original_id: message.message_id,
        body: message.body.unwrap_or_default(),
        attributes: message
            .message_attributes
            .into_iter()
            .filter_map(|(name, value)| value.string_value.map(|text| (name, text)))
            .collect(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use domain::fixtures::{APPROVED_TOKEN, SampleOrder};
    use domain::ports::InMemoryDeadLetters;

    use super::*;

    #[tokio::test]
    async fn a_built_batch_keeps_each_message_id_for_the_batch_answer_and_the_dlq() {
        let placed = SampleOrder::placed(APPROVED_TOKEN)
            .placed
            .to_json()
            .unwrap();
        let event = sqs_batch(&[("m-event", &placed), ("m-poison", "not an event")]);
        assert_eq!(
            domain::idempotency::invocation_deadline(event.context.deadline),
            None
        );
        let dead_letters = InMemoryDeadLetters::default();
        let answer = process_batch(event.payload, 1, &dead_letters, |_| async {
            Err(Failure::Transient("busy".into()))
        })
        .await;
        let failed: Vec<&str> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(
            failed,
            ["m-event"],
            "the event is retried, the poison is not"
        );
        let letters = dead_letters.letters();
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0].original_id.as_deref(), Some("m-poison"));
        assert_eq!(letters[0].body, "not an event");
    }
}
