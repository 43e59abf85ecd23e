//! The [`DeadLetterSink`] port on an SQS queue: the consumer queue's own DLQ.

use std::sync::OnceLock;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use tracing::Instrument;

use domain::failure::Failure;
use domain::ports::{DeadLetter, DeadLetterSink};

/// The message attribute carrying why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "dead_letter_reason";

/// The message attribute carrying the original SQS message id.
pub const ORIGINAL_ID_ATTRIBUTE: &str = "original_message_id";

/// Forwards poison messages to a DLQ.
///
/// Its SQS client is built on the first poison message, not at init: most processes
/// never see one, and every client built at init is time each cold start pays for
/// (`make bench` times each init phase).
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    sdk: SdkConfig,
    client: OnceLock<Client>,
    queue_url: String,
}

impl SqsDeadLetters {
    /// Forwards to the queue at `queue_url`, with a client built from `sdk` when first
    /// needed.
    pub fn new(sdk: &SdkConfig, queue_url: impl Into<String>) -> Self {
        Self {
            sdk: sdk.clone(),
            client: OnceLock::new(),
            queue_url: queue_url.into(),
        }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| Client::new(&self.sdk))
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, Failure> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| Failure::Permanent(format!("building a message attribute: {e}")))
}

impl DeadLetterSink for SqsDeadLetters {
    async fn forward(&self, letter: &DeadLetter) -> Result<(), Failure> {
        // SQS attribute values are limited; a reason is a sentence, keep it bounded.
        let reason: String = letter.reason.chars().take(1000).collect();
        let mut request = self
            .client()
            .send_message()
            .queue_url(&self.queue_url)
            // A body that was not valid UTF-8 never reaches us as text; keep what we have.
            .message_body(if letter.body.is_empty() {
                "(empty body)"
            } else {
                &letter.body
            })
            .message_attributes(REASON_ATTRIBUTE, attribute(&reason)?);
        if let Some(id) = &letter.original_id {
            request = request.message_attributes(ORIGINAL_ID_ATTRIBUTE, attribute(id)?);
        }
        for (name, text) in &letter.attributes {
            if name != REASON_ATTRIBUTE && name != ORIGINAL_ID_ATTRIBUTE {
                request = request.message_attributes(name, attribute(text)?);
            }
        }
        request
            .send()
            .instrument(crate::sdk::call_span("SQS.SendMessage"))
            .await
            .map(|_| ())
            .map_err(|e| crate::sdk::failure("SQS SendMessage (dead letter)", &e))
    }
}
