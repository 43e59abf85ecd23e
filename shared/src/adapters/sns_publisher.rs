//! [`EventPublisher`] on an SNS topic.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use tracing::Instrument;

use crate::events::{CORRELATION_ATTRIBUTE, TYPE_ATTRIBUTE};
use crate::ports::{EventPublisher, PublishError};

/// Publishes to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsEventPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsEventPublisher {
    /// Publishes to `topic_arn` through `client`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PublishError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PublishError::Permanent(format!("building message attribute: {e}")))
}

impl EventPublisher for SnsEventPublisher {
    async fn publish(
        &self,
        event_type: &str,
        correlation_id: &str,
        body: &str,
    ) -> Result<(), PublishError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            // Subscriptions filter on `type`, so each queue only gets what it handles.
            .message_attributes(TYPE_ATTRIBUTE, string_attribute(event_type)?)
            .message_attributes(CORRELATION_ATTRIBUTE, string_attribute(correlation_id)?)
            .send()
            .instrument(crate::aws::call_span("SNS.Publish"))
            .await
            .map(|_| ())
            .map_err(|e| {
                let message = format!("SNS Publish: {}", crate::aws::describe(&e));
                if crate::aws::is_transient(&e) {
                    PublishError::Transient(message)
                } else {
                    PublishError::Permanent(message)
                }
            })
    }
}
