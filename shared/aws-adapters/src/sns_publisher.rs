//! [`EventPublisher`] on an SNS topic.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use domain::failure::Failure;
use tracing::Instrument;

use domain::events::{CORRELATION_ATTRIBUTE, TYPE_ATTRIBUTE};
use domain::ports::{EventPublisher, Outgoing};

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

fn string_attribute(value: &str) -> Result<MessageAttributeValue, Failure> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| Failure::Permanent(format!("building message attribute: {e}")))
}

impl EventPublisher for SnsEventPublisher {
    async fn publish(
        &self,
        event_type: &str,
        correlation_id: &str,
        body: &str,
    ) -> Result<(), Failure> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            // Subscriptions filter on `type`, so each queue only gets what it handles.
            .message_attributes(TYPE_ATTRIBUTE, string_attribute(event_type)?)
            .message_attributes(CORRELATION_ATTRIBUTE, string_attribute(correlation_id)?)
            .send()
            .instrument(crate::sdk::call_span("SNS.Publish"))
            .await
            .map(|_| ())
            .map_err(|e| crate::sdk::failure("SNS Publish", &e))
    }

    /// One `PublishBatch` request for several events (one event: a plain `Publish`). SNS
    /// answers per entry, so one refused entry does not fail the others; the caller
    /// retries from the first failure.
    async fn publish_batch(&self, events: &[Outgoing<'_>]) -> Vec<Result<(), Failure>> {
        if let [one] = events {
            return vec![
                self.publish(one.event_type, one.correlation_id, one.body)
                    .await,
            ];
        }
        if events.is_empty() {
            return Vec::new();
        }
        let entries: Result<Vec<PublishBatchRequestEntry>, Failure> = events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                PublishBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message(event.body)
                    .message_attributes(TYPE_ATTRIBUTE, string_attribute(event.event_type)?)
                    .message_attributes(
                        CORRELATION_ATTRIBUTE,
                        string_attribute(event.correlation_id)?,
                    )
                    .build()
                    .map_err(|e| Failure::Permanent(format!("building a batch entry: {e}")))
            })
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(error) => return vec![Err(error); events.len()],
        };
        let answer = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .instrument(crate::sdk::call_span("SNS.PublishBatch"))
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(e) => return vec![Err(crate::sdk::failure("SNS PublishBatch", &e)); events.len()],
        };
        let published: Vec<String> = output
            .successful()
            .iter()
            .filter_map(|entry| entry.id().map(str::to_owned))
            .collect();
        (0..events.len())
            .map(|index| {
                let id = index.to_string();
                if let Some(failed) = output.failed().iter().find(|f| f.id() == id) {
                    let message = format!(
                        "SNS PublishBatch entry: {} {}",
                        failed.code(),
                        failed.message().unwrap_or_default()
                    );
                    // SNS marks the entries that failed through the caller's fault.
                    Err(if failed.sender_fault() {
                        Failure::Permanent(message)
                    } else {
                        Failure::Transient(message)
                    })
                } else if published.contains(&id) {
                    Ok(())
                } else {
                    Err(Failure::Transient(
                        "SNS PublishBatch did not answer for this entry".into(),
                    ))
                }
            })
            .collect()
    }
}
