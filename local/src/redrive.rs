//! Dead-letter queues: see what is in one and why, then move it back once the cause is
//! fixed. Works against the emulator and against AWS alike (the SDK config honours
//! `AWS_ENDPOINT_URL`); `make redrive` is the command.
//!
//! Consumers forward a message they can never process with its reason in the
//! `dead_letter_reason` attribute (see `shared::adapters::SqsDeadLetters`); messages the
//! queue's redrive policy moved after too many receives have no reason, only their
//! receive count. Moving back drops the dead-letter attributes, so a message that fails
//! again gets a fresh reason. Handling is idempotent everywhere, so moving back a message
//! that was in fact handled is harmless.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use shared::adapters::{ORIGINAL_ID_ATTRIBUTE, REASON_ATTRIBUTE};

/// One message in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the DLQ.
    pub message_id: String,
    /// The id it had in the queue it failed in, when a consumer forwarded it.
    pub original_id: Option<String>,
    /// Why it is here, when a consumer said so.
    pub reason: Option<String>,
    /// How often it was received before landing here (redrive policy moves).
    pub receive_count: Option<String>,
    /// The body, unchanged.
    pub body: String,
}

/// A queue call failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {detail}")]
pub struct RedriveError {
    operation: &'static str,
    detail: String,
}

fn failed<E>(operation: &'static str) -> impl FnOnce(E) -> RedriveError
where
    E: std::error::Error + 'static,
{
    move |error| RedriveError {
        operation,
        detail: shared::telemetry::ErrorChain(&error).to_string(),
    }
}

fn attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes
        .as_ref()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

/// Every message in the queue, without taking any: each is received with a zero
/// visibility timeout, so it stays visible to everyone else.
pub async fn list(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
) -> Result<Vec<DeadLetter>, RedriveError> {
    let mut seen = BTreeSet::new();
    let mut letters = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(failed("ReceiveMessage"))?
            .messages
            .unwrap_or_default();
        let mut new = 0;
        for message in batch {
            let id = message.message_id.clone().unwrap_or_default();
            if !seen.insert(id.clone()) {
                continue;
            }
            new += 1;
            letters.push(DeadLetter {
                message_id: id,
                original_id: attribute(&message, ORIGINAL_ID_ATTRIBUTE),
                reason: attribute(&message, REASON_ATTRIBUTE),
                receive_count: message
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .cloned(),
                body: message.body.unwrap_or_default(),
            });
        }
        // A receive that brings nothing new means every message has been seen.
        if new == 0 {
            return Ok(letters);
        }
    }
}

/// Moves every message from the DLQ to `target_url`: sent first, deleted from the DLQ
/// only once the send succeeded, so nothing is lost if the move stops halfway (at worst
/// a message is in both, and handling is idempotent). Returns how many moved.
pub async fn move_back(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    target_url: &str,
) -> Result<usize, RedriveError> {
    let mut moved = 0;
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(failed("ReceiveMessage"))?
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            return Ok(moved);
        }
        for message in batch {
            let attributes: HashMap<String, MessageAttributeValue> = message
                .message_attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|(name, _)| name != REASON_ATTRIBUTE && name != ORIGINAL_ID_ATTRIBUTE)
                .collect();
            sqs.send_message()
                .queue_url(target_url)
                .message_body(message.body.clone().unwrap_or_default())
                .set_message_attributes((!attributes.is_empty()).then_some(attributes))
                .send()
                .await
                .map_err(failed("SendMessage"))?;
            if let Some(handle) = &message.receipt_handle {
                sqs.delete_message()
                    .queue_url(dlq_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(failed("DeleteMessage"))?;
            }
            moved += 1;
        }
    }
}
