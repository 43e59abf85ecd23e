//! Lambda's SQS event source mapping, emulated.
//!
//! Receive up to `BatchSize` messages (waiting up to `MaximumBatchingWindowInSeconds` to
//! fill the batch), invoke the function with Lambda's SQS event, delete the messages that
//! succeeded (in one DeleteMessageBatch) and leave the failed ones on the queue, each
//! message settled on its own, as Lambda's poller does. With `ReportBatchItemFailures` the
//! function names the failed messages; without it, or when the invocation fails, the
//! whole batch failed. The queue's own redrive policy moves a message that keeps failing
//! to its DLQ after `maxReceiveCount` receives, exactly as in AWS.
//!
//! A failed message is left on the queue, untouched, as Lambda leaves it: it comes back
//! once the queue's `VisibilityTimeout` has passed since its receive. Tests of retries
//! may shorten that, explicitly, with [`Redelivery::After`].
//!
//! For the reliability runs a poller can also be made to deliver every message more than
//! once and shuffle its batches ([`crate::chaos`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::{Map, Value, json};

use crate::chaos::Chaos;
use crate::invoke::{Invoke, TIMED_OUT};
use emulator::REGION;
use emulator::filter;
use emulator::provision::QueueMapping;

/// A queue's messages as `GetQueueAttributes` counts them (approximately, as SQS says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// Visible, waiting to be received.
    pub waiting: u64,
    /// Received and not yet deleted or back (in flight).
    pub in_flight: u64,
}

impl Depth {
    /// Every message the queue holds.
    pub fn total(self) -> u64 {
        self.waiting + self.in_flight
    }
}

/// How many messages a queue holds, waiting and in flight: what the audits, the smoke
/// test and the tests read to know a queue (a DLQ most often) is empty.
pub async fn depth(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Depth, SdkError<GetQueueAttributesError>> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let count = |name| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };
    Ok(Depth {
        waiting: count(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    })
}

/// How long an empty receive waits for a message (Lambda waits up to 20 s; locally a short
/// wait keeps shutdowns quick while still sparing the emulator a stream of empty polls).
const LONG_POLL_SECONDS: i32 = 2;

/// The shortest wait before retrying the batch of an invocation that timed out. Its
/// records' idempotency claims stay in progress until a second after its deadline
/// ([`domain::idempotency::in_progress_window`]); a retry sooner would find them still
/// held and spend one of the message's `maxReceiveCount` receives on nothing. On AWS
/// the 60 s visibility timeout covers this by far.
const RETRY_AFTER_TIMEOUT: Duration = Duration::from_secs(2);

/// When a message whose invocation failed (or timed out) is delivered again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Redelivery {
    /// As on AWS: the message is left alone, and SQS makes it visible again once its
    /// queue's `VisibilityTimeout` has passed since the receive. What `make dev` and
    /// `make demo` do, so a visibility timeout too short for its consumer shows up here.
    #[default]
    AsTheQueueSays,
    /// For tests of retries only: visible again this long after the failure
    /// (ChangeMessageVisibility), so each retry does not wait out a minute. A batch that
    /// timed out waits at least [`RETRY_AFTER_TIMEOUT`].
    After(Duration),
}

/// Talking to SQS failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct QueueError {
    /// The API call.
    pub operation: &'static str,
    /// The SDK's error.
    pub message: String,
}

fn aws<E: std::fmt::Debug>(operation: &'static str) -> impl FnOnce(E) -> QueueError {
    move |e| QueueError {
        operation,
        message: format!("{e:?}"),
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueReport {
    /// Messages passed to the function.
    pub delivered: usize,
    /// Messages that matched none of the mapping's `FilterCriteria`: deleted without an
    /// invocation, as Lambda deletes them.
    pub filtered_out: usize,
    /// Messages the function handled: deleted, unless listed in `unsettled`.
    pub succeeded: usize,
    /// Messages left on the queue for another try.
    pub failed: usize,
    /// Messages whose settling call failed, each with the reason, so the caller can log
    /// them (the host does): none of them stops the others from being settled. Each
    /// stays on the queue and comes back after the queue's visibility timeout, a handled
    /// one to be handled again (harmless, handling is idempotent), a failed one to be
    /// retried later than [`Redelivery::After`] would say.
    pub unsettled: Vec<SettleFailure>,
}

/// One message the poller could not delete or make visible again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleFailure {
    /// The message's SQS id, to find it in the queue and in the function's logs.
    pub message_id: String,
    /// The call that failed: `DeleteMessageBatch`, `DeleteMessage` (the one retry of a
    /// batch entry SQS failed on its side) or `ChangeMessageVisibility`.
    pub operation: &'static str,
    /// SQS's reason (its error code and message), for the log line.
    pub reason: String,
}

/// An error with its sources, for a log line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    aws_adapters::telemetry::ErrorChain(error).to_string()
}

/// Polls one queue for one mapping.
pub struct QueuePoller {
    sqs: aws_sdk_sqs::Client,
    mapping: QueueMapping,
    redelivery: Redelivery,
    chaos: Arc<Chaos>,
}

impl QueuePoller {
    /// A poller for `mapping`.
    pub fn new(config: &SdkConfig, mapping: QueueMapping) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(config),
            mapping,
            redelivery: Redelivery::default(),
            chaos: Arc::new(Chaos::default()),
        }
    }

    /// Delivers with duplicates and shuffled batches (shared by every poller of a run, so
    /// copies are recognised whichever poller receives them).
    pub fn chaos(mut self, chaos: Arc<Chaos>) -> Self {
        self.chaos = chaos;
        self
    }

    /// When a failed message is delivered again.
    pub fn redelivery(mut self, redelivery: Redelivery) -> Self {
        self.redelivery = redelivery;
        self
    }

    /// The mapping this poller serves.
    pub fn mapping(&self) -> &QueueMapping {
        &self.mapping
    }

    async fn receive(&self) -> Result<Vec<Message>, QueueError> {
        let window = Instant::now() + Duration::from_secs(self.mapping.batching_window_seconds);
        let mut messages = Vec::new();
        loop {
            let wanted = (self.mapping.batch_size - messages.len()).min(10);
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.mapping.queue_url)
                .max_number_of_messages(i32::try_from(wanted).unwrap_or(10))
                // Long polling, as Lambda's pollers do: an empty queue answers when a
                // message arrives or after the wait, not with a stream of empty replies.
                // Once a batch has begun, only what is already there is taken.
                .wait_time_seconds(if messages.is_empty() {
                    LONG_POLL_SECONDS
                } else {
                    0
                })
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(aws("ReceiveMessage"))?
                .messages
                .unwrap_or_default();
            let got_some = !received.is_empty();
            messages.extend(received);
            let full = messages.len() >= self.mapping.batch_size;
            // Keep filling the batch only while messages keep coming within the window.
            if full || !got_some || Instant::now() >= window {
                return Ok(messages);
            }
        }
    }

    /// Receives one batch (if any), invokes, and settles every message.
    pub async fn poll_once(&self, function: &dyn Invoke) -> Result<QueueReport, QueueError> {
        let mut messages = self.receive().await?;
        if messages.is_empty() {
            return Ok(QueueReport::default());
        }
        if !self.chaos.is_calm() {
            self.send_copies(&messages).await?;
            self.chaos.shuffle(&mut messages);
        }
        let mut report = QueueReport::default();
        if !self.mapping.filters.is_empty() {
            let (kept, dropped): (Vec<Message>, Vec<Message>) =
                messages.into_iter().partition(|m| {
                    filter::passes(&self.mapping.filters, &filtered_view(self.record(m)))
                });
            report.filtered_out = dropped.len();
            let entries: Vec<_> = dropped
                .iter()
                .enumerate()
                .filter_map(|(index, m)| {
                    let entry = DeleteMessageBatchRequestEntry::builder()
                        .id(format!("filtered-{index}"))
                        .receipt_handle(m.receipt_handle.clone()?)
                        .build()
                        .ok()?;
                    Some((entry, m.message_id.clone().unwrap_or_default()))
                })
                .collect();
            for chunk in entries.chunks(10) {
                self.delete_batch(chunk, &mut report.unsettled).await;
            }
            messages = kept;
            if messages.is_empty() {
                return Ok(report);
            }
        }
        let records: Vec<Value> = messages.iter().map(|m| self.record(m)).collect();
        let outcome = function.invoke(json!({ "Records": records })).await;
        let ids: Vec<&str> = messages
            .iter()
            .map(|m| m.message_id.as_deref().unwrap_or_default())
            .collect();
        let failed: Vec<bool> = match &outcome {
            Ok(response) if self.mapping.report_batch_item_failures => {
                failed_ids(response, &ids).unwrap_or_else(|| vec![true; ids.len()])
            }
            Ok(_) => vec![false; ids.len()],
            Err(_) => vec![true; ids.len()],
        };
        let redelivery = match (self.redelivery, &outcome) {
            (Redelivery::After(delay), Err(error)) if error.error_type == TIMED_OUT => {
                Redelivery::After(delay.max(RETRY_AFTER_TIMEOUT))
            }
            (redelivery, _) => redelivery,
        };
        report.delivered = messages.len();
        // Settle the batch as Lambda does, each message on its own: the failed ones made
        // visible again for their retry, then one DeleteMessageBatch per ten that
        // succeeded. A call that fails for one message never stops the others.
        let mut done = Vec::new();
        for (index, (message, failed)) in messages.iter().zip(failed).enumerate() {
            let id = message.message_id.clone().unwrap_or_default();
            if failed {
                report.failed += 1;
            } else {
                report.succeeded += 1;
            }
            // A failed message is left for SQS to bring back, unless a test asked for
            // it sooner.
            let delay = match (failed, redelivery) {
                (false, _) => None,
                (true, Redelivery::AsTheQueueSays) => continue,
                (true, Redelivery::After(delay)) => Some(delay),
            };
            let Some(handle) = message.receipt_handle.clone() else {
                report.unsettled.push(SettleFailure {
                    message_id: id,
                    operation: if failed {
                        "ChangeMessageVisibility"
                    } else {
                        "DeleteMessageBatch"
                    },
                    reason: "SQS gave no receipt handle".into(),
                });
                continue;
            };
            if let Some(delay) = delay {
                let changed = self
                    .sqs
                    .change_message_visibility()
                    .queue_url(&self.mapping.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(0))
                    .send()
                    .await;
                if let Err(error) = changed {
                    report.unsettled.push(SettleFailure {
                        message_id: id,
                        operation: "ChangeMessageVisibility",
                        reason: chain(&error),
                    });
                }
            } else {
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(handle)
                    .build();
                match entry {
                    Ok(entry) => done.push((entry, id)),
                    Err(error) => report.unsettled.push(SettleFailure {
                        message_id: id,
                        operation: "DeleteMessageBatch",
                        reason: chain(&error),
                    }),
                }
            }
        }
        for chunk in done.chunks(10) {
            self.delete_batch(chunk, &mut report.unsettled).await;
        }
        Ok(report)
    }

    /// Deletes up to ten handled messages in one DeleteMessageBatch and records every one
    /// not deleted. SQS answers per entry: an entry SQS failed on its own side
    /// (`SenderFault: false`, e.g. `InternalError`) is retried once alone with
    /// DeleteMessage; one it refused as the caller's fault (e.g. `ReceiptHandleIsInvalid`:
    /// the message is gone or its receipt expired) is not, since the retry would get the
    /// same answer. When the whole call fails (the SDK has already retried it), none is
    /// retried. Whatever stays undeleted comes back after the queue's visibility timeout
    /// and is handled again, which idempotent handling makes harmless.
    async fn delete_batch(
        &self,
        chunk: &[(DeleteMessageBatchRequestEntry, String)],
        unsettled: &mut Vec<SettleFailure>,
    ) {
        let message_id = |entry_id: &str| {
            chunk
                .iter()
                .find(|(entry, _)| entry.id() == entry_id)
                .map(|(_, message_id)| message_id.clone())
                .unwrap_or_default()
        };
        let answer = match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.mapping.queue_url)
            .set_entries(Some(chunk.iter().map(|(entry, _)| entry.clone()).collect()))
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                let reason = chain(&error);
                unsettled.extend(chunk.iter().map(|(_, message_id)| SettleFailure {
                    message_id: message_id.clone(),
                    operation: "DeleteMessageBatch",
                    reason: reason.clone(),
                }));
                return;
            }
        };
        for failure in answer.failed() {
            let reason = format!(
                "{}: {}",
                failure.code(),
                failure.message().unwrap_or("no message")
            );
            let retry = chunk
                .iter()
                .map(|(entry, _)| entry)
                .find(|entry| entry.id() == failure.id())
                .filter(|_| !failure.sender_fault());
            let Some(entry) = retry else {
                unsettled.push(SettleFailure {
                    message_id: message_id(failure.id()),
                    operation: "DeleteMessageBatch",
                    reason,
                });
                continue;
            };
            let retried = self
                .sqs
                .delete_message()
                .queue_url(&self.mapping.queue_url)
                .receipt_handle(entry.receipt_handle())
                .send()
                .await;
            if let Err(error) = retried {
                unsettled.push(SettleFailure {
                    message_id: message_id(failure.id()),
                    operation: "DeleteMessage",
                    reason: format!("{reason}; retried alone: {}", chain(&error)),
                });
            }
        }
    }

    /// Sends the duplicates chaos asks for, before the originals are handled, so they race.
    async fn send_copies(&self, messages: &[Message]) -> Result<(), QueueError> {
        for message in messages {
            let copies = self
                .chaos
                .copies_of(message.message_id.as_deref().unwrap_or_default());
            for _ in 0..copies {
                let sent = self
                    .sqs
                    .send_message()
                    .queue_url(&self.mapping.queue_url)
                    .set_message_body(message.body.clone())
                    .set_message_attributes(message.message_attributes.clone())
                    .send()
                    .await
                    .map_err(aws("SendMessage"))?;
                self.chaos.record_copy(sent.message_id.unwrap_or_default());
            }
        }
        Ok(())
    }

    /// The message as Lambda puts it in an SQS event.
    fn record(&self, message: &Message) -> Value {
        let system: Map<String, Value> = message
            .attributes
            .as_ref()
            .map(|attributes| {
                attributes
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let custom: Map<String, Value> = message
            .message_attributes
            .as_ref()
            .map(|attributes: &HashMap<_, _>| {
                attributes
                    .iter()
                    .map(
                        |(name, value): (&String, &aws_sdk_sqs::types::MessageAttributeValue)| {
                            (
                                name.clone(),
                                json!({
                                    "stringValue": value.string_value(),
                                    "stringListValues": [],
                                    "binaryListValues": [],
                                    "dataType": value.data_type(),
                                }),
                            )
                        },
                    )
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "messageId": message.message_id,
            "receiptHandle": message.receipt_handle,
            "body": message.body,
            "attributes": system,
            "messageAttributes": custom,
            "md5OfBody": message.md5_of_body,
            "eventSource": "aws:sqs",
            "eventSourceARN": self.mapping.queue_arn,
            "awsRegion": REGION,
        })
    }
}

/// A record as Lambda's filters see it: a body that is a JSON object is matched field by
/// field (`"body": {"type": ["OrderPlaced"]}`), any other body as the plain string.
fn filtered_view(mut record: Value) -> Value {
    let parsed = record["body"]
        .as_str()
        .and_then(|body| serde_json::from_str::<Value>(body).ok())
        .filter(Value::is_object);
    if let Some(body) = parsed {
        record["body"] = body;
    }
    record
}

/// Which messages the response names as failed; `None` when it names one that is not
/// in the batch (Lambda then treats the whole batch as failed).
fn failed_ids(response: &Value, ids: &[&str]) -> Option<Vec<bool>> {
    let mut failed = vec![false; ids.len()];
    let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return Some(failed);
    };
    for failure in failures {
        let id = failure.get("itemIdentifier").and_then(Value::as_str)?;
        let index = ids.iter().position(|known| *known == id)?;
        failed[index] = true;
    }
    Some(failed)
}
