//! Lambda's SQS event source mapping, emulated.
//!
//! Receive up to `BatchSize` messages (waiting up to `MaximumBatchingWindowInSeconds` to
//! fill the batch), invoke the function with Lambda's SQS event, delete the messages that
//! succeeded (in one DeleteMessageBatch) and leave the failed ones on the queue. With `ReportBatchItemFailures` the
//! function names the failed messages; without it, or when the invocation fails, the
//! whole batch failed. The queue's own redrive policy moves a message that keeps failing
//! to its DLQ after `maxReceiveCount` receives, exactly as in AWS.
//!
//! One local shortcut, so tests and demos do not wait out visibility timeouts: a failed
//! message is made visible again after [`QueuePoller::retry_delay`] (default: at once)
//! instead of after the queue's visibility timeout.
//!
//! For the reliability runs a poller can also be made to deliver every message more than
//! once and shuffle its batches ([`crate::chaos`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{Map, Value, json};

use crate::chaos::Chaos;
use crate::emulator::REGION;
use crate::invoke::{Invoke, TIMED_OUT};
use crate::provision::QueueMapping;

/// How long an empty receive waits for a message (Lambda waits up to 20 s; locally a short
/// wait keeps shutdowns quick while still sparing the emulator a stream of empty polls).
const LONG_POLL_SECONDS: i32 = 2;

/// The shortest wait before retrying the batch of an invocation that timed out. Its
/// records' idempotency claims stay in progress until a second after its deadline
/// ([`shared::idempotency::in_progress_window`]); a retry sooner would find them still
/// held and spend one of the message's `maxReceiveCount` receives on nothing. On AWS
/// the 60 s visibility timeout covers this by far.
const RETRY_AFTER_TIMEOUT: Duration = Duration::from_secs(2);

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueReport {
    /// Messages passed to the function.
    pub delivered: usize,
    /// Messages handled and deleted.
    pub succeeded: usize,
    /// Messages left on the queue for another try.
    pub failed: usize,
}

/// Polls one queue for one mapping.
pub struct QueuePoller {
    sqs: aws_sdk_sqs::Client,
    mapping: QueueMapping,
    retry_delay: Duration,
    chaos: Arc<Chaos>,
}

impl QueuePoller {
    /// A poller for `mapping`.
    pub fn new(config: &SdkConfig, mapping: QueueMapping) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(config),
            mapping,
            retry_delay: Duration::ZERO,
            chaos: Arc::new(Chaos::default()),
        }
    }

    /// Delivers with duplicates and shuffled batches (shared by every poller of a run, so
    /// copies are recognised whichever poller receives them).
    pub fn chaos(mut self, chaos: Arc<Chaos>) -> Self {
        self.chaos = chaos;
        self
    }

    /// How long a failed message stays invisible before it is retried.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
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
        let retry_delay = match &outcome {
            Err(error) if error.error_type == TIMED_OUT => {
                self.retry_delay.max(RETRY_AFTER_TIMEOUT)
            }
            _ => self.retry_delay,
        };
        let mut report = QueueReport {
            delivered: messages.len(),
            ..QueueReport::default()
        };
        // Settle the batch as Lambda does: one DeleteMessageBatch for the messages that
        // succeeded, and the failed ones made visible again for their retry.
        let mut done = Vec::new();
        for (index, (message, failed)) in messages.iter().zip(failed).enumerate() {
            let handle = message.receipt_handle.clone().unwrap_or_default();
            if failed {
                report.failed += 1;
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.mapping.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(i32::try_from(retry_delay.as_secs()).unwrap_or(0))
                    .send()
                    .await
                    .map_err(aws("ChangeMessageVisibility"))?;
            } else {
                report.succeeded += 1;
                done.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(handle)
                        .build()
                        .map_err(aws("DeleteMessageBatch entry"))?,
                );
            }
        }
        for entries in done.chunks(10) {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.mapping.queue_url)
                .set_entries(Some(entries.to_vec()))
                .send()
                .await
                .map_err(aws("DeleteMessageBatch"))?;
        }
        Ok(report)
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
