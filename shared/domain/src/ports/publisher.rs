//! The event publisher port, and its in-memory fake.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use crate::failure::Failure;

/// Most events one [`EventPublisher::publish_batch`] call takes (SNS's `PublishBatch` limit).
pub const PUBLISH_BATCH_LIMIT: usize = 10;

/// One event to publish: its routing attributes and its body, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// The event's type: subscriptions filter on it.
    pub event_type: &'a str,
    /// The correlation id, carried as an attribute for tracing.
    pub correlation_id: &'a str,
    /// The envelope, verbatim.
    pub body: &'a str,
}

/// Publishes an event to the order-events topic.
pub trait EventPublisher: Send + Sync {
    /// Publishes one event with its routing attributes. At-least-once: a retry after a
    /// lost acknowledgement publishes it again, and consumers deduplicate on its id.
    fn publish(
        &self,
        event_type: &str,
        correlation_id: &str,
        body: &str,
    ) -> impl Future<Output = Result<(), Failure>> + Send;

    /// Publishes up to [`PUBLISH_BATCH_LIMIT`] events and answers one result per event, in
    /// order. One request for several events is cheaper and lighter on the topic than one
    /// each, which matters to the relay when a stream batch holds many. This default
    /// publishes one at a time and stops at the first failure: the events after it are
    /// answered as not attempted.
    fn publish_batch(
        &self,
        events: &[Outgoing<'_>],
    ) -> impl Future<Output = Vec<Result<(), Failure>>> + Send {
        async move {
            let mut results: Vec<Result<(), Failure>> = Vec::with_capacity(events.len());
            for event in events {
                let result = if results.iter().any(Result::is_err) {
                    Err(Failure::Transient(
                        "not attempted: an earlier event of the batch failed".into(),
                    ))
                } else {
                    self.publish(event.event_type, event.correlation_id, event.body)
                        .await
                };
                results.push(result);
            }
            results
        }
    }
}

/// One event a [`RecordingPublisher`] published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its type attribute.
    pub event_type: String,
    /// Its correlation id attribute.
    pub correlation_id: String,
    /// Its body, verbatim.
    pub body: String,
}

/// A publisher that remembers what it published: the fake for unit tests. Set
/// `fail_with` to make every publish fail, as a throttled or misconfigured topic would.
#[derive(Debug, Clone, Default)]
pub struct RecordingPublisher {
    published: Arc<Mutex<Vec<Published>>>,
    /// When set, every publish fails with this.
    pub fail_with: Option<Failure>,
}

impl RecordingPublisher {
    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<Published> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The type of everything published so far, in order: what most tests assert.
    pub fn event_types(&self) -> Vec<String> {
        self.published().into_iter().map(|p| p.event_type).collect()
    }
}

impl EventPublisher for RecordingPublisher {
    async fn publish(
        &self,
        event_type: &str,
        correlation_id: &str,
        body: &str,
    ) -> Result<(), Failure> {
        if let Some(failure) = &self.fail_with {
            return Err(failure.clone());
        }
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Published {
                event_type: event_type.to_owned(),
                correlation_id: correlation_id.to_owned(),
                body: body.to_owned(),
            });
        Ok(())
    }
}
