//! Dead-letter queues: see what is in one and why, then move it back once the cause is
//! fixed. Works against the emulator and against AWS alike (the SDK config honours
//! `AWS_ENDPOINT_URL`); `make redrive` is the command.
//!
//! A message reaches a DLQ in one of two ways, and the listing tells them apart:
//!
//! - **Forwarded at once** by the function that failed on it (see
//!   `aws_adapters::SqsDeadLetters`): a copy, with a new message id, its reason in the
//!   `dead_letter_reason` attribute and the id it had before in `original_message_id`.
//!   The listing prints that original id, because it is the one the function's ERROR
//!   log line names.
//! - **Moved by the queue's redrive policy** after `maxReceiveCount` receives: the
//!   message itself, with no reason attribute. The listing prints how often it was
//!   received before the listing looked at it.
//!
//! Moving back drops the dead-letter attributes, so a message that fails again gets a
//! fresh reason. Handling is idempotent everywhere, so moving back a message that was in
//! fact handled is harmless.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_adapters::{ORIGINAL_ID_ATTRIBUTE, REASON_ATTRIBUTE};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::Value;

/// How long [`list`] hides each message it has listed, so that the next receive brings
/// others (SQS gives at most 10 per receive, and a message received with a zero
/// visibility timeout may come straight back in the next, in place of the rest), and how
/// long [`move_back`] hides each message it is moving. Long enough for a listing of
/// thousands; should the tool die halfway, the messages are visible again after it.
const HOLD_SECONDS: i32 = 60;

/// How long a listing receive waits. Long polling asks every SQS server, so an empty
/// answer means nothing visible is left; a short poll samples a few servers and can
/// answer empty while messages remain. Costs one wait at the end of a listing.
const LIST_WAIT_SECONDS: i32 = 1;

/// One message in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the DLQ. A forwarded copy has a new id here, which no log line names.
    pub message_id: String,
    /// The id it had where it failed, when a function forwarded it: the id that
    /// function's ERROR log line names, so the two can be matched.
    pub original_id: Option<String>,
    /// Why it is here, when the function that forwarded it said so.
    pub reason: Option<String>,
    /// How often it was received before this listing: SQS's `ApproximateReceiveCount`
    /// less the listing's own receive (which SQS counts too). For a message the redrive
    /// policy moved, that is its receives in its queue plus any earlier listings.
    pub received_before: Option<u64>,
    /// The body, unchanged.
    pub body: String,
}

/// How a letter without a reason got here. Only forwarding sets a reason, so it was moved
/// by the redrive policy, unless someone sent it to the DLQ themselves.
const NO_REASON: &str =
    "no reason: moved by the redrive policy after too many receives (or sent here by hand)";

impl DeadLetter {
    /// The letter as `make redrive` prints it: the id to look for in the logs, how it got
    /// here, and the start of its body. Everything but the counts comes from whoever sent
    /// the message, so control characters are escaped ([`printable`]): a hostile body
    /// cannot clear the screen or overwrite the lines before it.
    pub fn describe(&self) -> String {
        let id = match &self.original_id {
            Some(original) => format!(
                "original id {}  (the id its ERROR log line names)",
                printable(original)
            ),
            None => format!("message id {}", printable(&self.message_id)),
        };
        let how = match (&self.reason, self.received_before) {
            (Some(reason), _) => format!(
                "forwarded at once by the function that failed on it, reason: {}",
                printable(reason)
            ),
            (None, Some(count)) => {
                format!("{NO_REASON}; received {count} time(s) before this listing")
            }
            (None, None) => NO_REASON.to_owned(),
        };
        let body: String = self.body.chars().take(200).collect();
        format!("{id}\n    {how}\n    body: {}", printable(&body))
    }
}

/// `text` with every character that could steer a terminal escaped as Rust writes it
/// (`\u{1b}`, `\r`, `\n`, `\t`): the C0 and C1 controls and DEL, which start escape
/// sequences or move the cursor, and the bidirectional overrides, which reorder what is
/// shown. Everything else, other Unicode text included, stays as it is, readable.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        if c.is_control() || bidi {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why redrive stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// A queue call failed.
    #[error("{operation}: {detail}")]
    Call {
        /// The SQS operation.
        operation: &'static str,
        /// What went wrong, with its causes.
        detail: String,
    },
    /// The target of a move is not the queue the DLQ's messages came from, so moving
    /// them there would hand them to a consumer that never meant to get them.
    #[error(
        "refusing to move messages from {dlq} to {target}: {target} is not this DLQ's source ({found}); nothing was moved"
    )]
    NotTheSource {
        /// The DLQ's URL.
        dlq: String,
        /// The target's URL.
        target: String,
        /// What the target's redrive policy says instead.
        found: String,
    },
}

fn failed<E>(operation: &'static str) -> impl FnOnce(E) -> RedriveError
where
    E: std::error::Error + 'static,
{
    move |error| RedriveError::Call {
        operation,
        detail: aws_adapters::telemetry::ErrorChain(&error).to_string(),
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

fn dead_letter(message: Message) -> DeadLetter {
    // SQS counts the receive that brought the message to this listing: leave it out.
    let received_before = message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse::<u64>().ok())
        .map(|count| count.saturating_sub(1));
    DeadLetter {
        message_id: message.message_id.clone().unwrap_or_default(),
        original_id: attribute(&message, ORIGINAL_ID_ATTRIBUTE),
        reason: attribute(&message, REASON_ATTRIBUTE),
        received_before,
        body: message.body.unwrap_or_default(),
    }
}

/// Every message in the queue, each once, without taking any. Each is received with a
/// visibility timeout of [`HOLD_SECONDS`], so the next receive brings others, until
/// a receive brings nothing; then every listed message is made visible again at once,
/// leaving the queue as it was. (Receiving with a zero visibility timeout would leave
/// them visible throughout, but then SQS may hand back the same ten every time and the
/// rest would never be listed.) Messages are told apart by id, in case one reappears
/// before the listing ends.
pub async fn list(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
) -> Result<Vec<DeadLetter>, RedriveError> {
    let mut letters = Vec::new();
    // Message id -> the receipt handle of its latest receive, to make it visible again.
    let mut held = BTreeMap::new();
    let received = loop {
        let batch = match sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD_SECONDS)
            .wait_time_seconds(LIST_WAIT_SECONDS)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
        {
            Ok(answer) => answer.messages.unwrap_or_default(),
            Err(error) => break Err(failed("ReceiveMessage")(error)),
        };
        if batch.is_empty() {
            break Ok(());
        }
        for message in batch {
            let id = message.message_id.clone().unwrap_or_default();
            let handle = message.receipt_handle.clone().unwrap_or_default();
            if held.insert(id, handle).is_none() {
                letters.push(dead_letter(message));
            }
        }
    };
    // Hand everything back even when a receive failed, so nothing stays hidden for long.
    let restored = make_visible(sqs, dlq_url, &held).await;
    received?;
    restored?;
    Ok(letters)
}

/// Makes the held messages visible again, ten per call; tries every one whatever the
/// others' answers, and says how many stay hidden (until their hold runs out).
async fn make_visible(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    held: &BTreeMap<String, String>,
) -> Result<(), RedriveError> {
    let handles: Vec<&String> = held.values().collect();
    let mut hidden = 0;
    let mut first_reason = None;
    for chunk in handles.chunks(10) {
        let entries: Result<Vec<_>, _> = chunk
            .iter()
            .enumerate()
            .map(|(index, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(handle.as_str())
                    .visibility_timeout(0)
                    .build()
            })
            .collect();
        let answer = match entries {
            Ok(entries) => sqs
                .change_message_visibility_batch()
                .queue_url(dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(failed("ChangeMessageVisibilityBatch")),
            Err(error) => Err(failed("ChangeMessageVisibilityBatch")(error)),
        };
        match answer {
            Ok(answer) => {
                for failure in answer.failed() {
                    hidden += 1;
                    first_reason.get_or_insert_with(|| {
                        format!(
                            "{}: {}",
                            failure.code(),
                            failure.message().unwrap_or_default()
                        )
                    });
                }
            }
            Err(error) => {
                hidden += chunk.len();
                first_reason.get_or_insert_with(|| error.to_string());
            }
        }
    }
    match first_reason {
        None => Ok(()),
        Some(reason) => Err(RedriveError::Call {
            operation: "ChangeMessageVisibilityBatch",
            detail: format!("{hidden} message(s) stay hidden for up to {HOLD_SECONDS} s: {reason}"),
        }),
    }
}

/// One attribute of a queue, if it has it.
async fn queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    name: QueueAttributeName,
) -> Result<Option<String>, RedriveError> {
    Ok(sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(failed("GetQueueAttributes"))?
        .attributes
        .and_then(|mut attributes| attributes.remove(&name)))
}

/// Refuses a target whose `RedrivePolicy` does not name this DLQ as its
/// `deadLetterTargetArn`: a mistyped `--to` would otherwise hand the messages to a
/// consumer that was never meant to see them.
async fn check_source(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    target_url: &str,
) -> Result<(), RedriveError> {
    let dlq_arn = queue_attribute(sqs, dlq_url, QueueAttributeName::QueueArn)
        .await?
        .unwrap_or_default();
    let policy = queue_attribute(sqs, target_url, QueueAttributeName::RedrivePolicy).await?;
    let target_dlq = policy
        .as_deref()
        .and_then(|policy| serde_json::from_str::<Value>(policy).ok())
        .and_then(|policy| {
            policy
                .get("deadLetterTargetArn")?
                .as_str()
                .map(str::to_owned)
        });
    let found = match (&policy, &target_dlq) {
        (_, Some(arn)) if !dlq_arn.is_empty() && *arn == dlq_arn => return Ok(()),
        (None, _) => "it has no redrive policy".to_owned(),
        (Some(_), Some(arn)) => {
            format!("its redrive policy sends dead letters to {arn}, not to {dlq_arn}")
        }
        (Some(policy), None) => format!("its redrive policy names no dead-letter queue: {policy}"),
    };
    Err(RedriveError::NotTheSource {
        dlq: dlq_url.to_owned(),
        target: target_url.to_owned(),
        found,
    })
}

/// Moves every message from the DLQ to `target_url`: sent first, deleted from the DLQ
/// only once the send succeeded, so nothing is lost if the move stops halfway (at worst
/// a message is in both, and handling is idempotent). Returns how many moved.
///
/// Only to the DLQ's source: a `target_url` whose `RedrivePolicy` does not name this
/// DLQ is refused with [`RedriveError::NotTheSource`] before anything is moved.
///
/// Each message moves once. While the move runs, the target's consumer may fail on a
/// moved message again and send it straight back (a poison message is forwarded with
/// the id it had in the target as its original id). Such a message is recognised by
/// that id and left in the DLQ; without this, the move would send it round in circles.
pub async fn move_back(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    target_url: &str,
) -> Result<usize, RedriveError> {
    check_source(sqs, dlq_url, target_url).await?;
    // The ids the moved messages got in the target.
    let mut sent = HashSet::new();
    // Messages that came back: hidden while the move runs, made visible again after it.
    let mut held = BTreeMap::new();
    let mut moved = 0;
    let result = loop {
        let batch = match sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD_SECONDS)
            .message_attribute_names("All")
            .send()
            .await
        {
            Ok(answer) => answer.messages.unwrap_or_default(),
            Err(error) => break Err(failed("ReceiveMessage")(error)),
        };
        if batch.is_empty() {
            break Ok(());
        }
        match move_batch(sqs, dlq_url, target_url, batch, &mut sent, &mut held).await {
            Ok(count) => moved += count,
            Err(error) => break Err(error),
        }
    };
    let restored = make_visible(sqs, dlq_url, &held).await;
    result?;
    restored?;
    Ok(moved)
}

/// Moves one received batch to the target, except the messages that came back during
/// this move (their id, or their original id, is in `sent`), which go into `held`.
/// Returns how many moved.
async fn move_batch(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    target_url: &str,
    batch: Vec<Message>,
    sent: &mut HashSet<String>,
    held: &mut BTreeMap<String, String>,
) -> Result<usize, RedriveError> {
    let mut moved = 0;
    for message in batch {
        let id = message.message_id.clone().unwrap_or_default();
        let original = attribute(&message, ORIGINAL_ID_ATTRIBUTE).unwrap_or_default();
        if sent.contains(&id) || sent.contains(&original) {
            held.insert(id, message.receipt_handle.clone().unwrap_or_default());
            continue;
        }
        let attributes: HashMap<String, MessageAttributeValue> = message
            .message_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| name != REASON_ATTRIBUTE && name != ORIGINAL_ID_ATTRIBUTE)
            .collect();
        let answer = sqs
            .send_message()
            .queue_url(target_url)
            .message_body(message.body.clone().unwrap_or_default())
            .set_message_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(failed("SendMessage"))?;
        if let Some(new_id) = answer.message_id {
            sent.insert(new_id);
        }
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
    Ok(moved)
}
