//! The event relay: publishes outbox rows from the orders table's stream to SNS.
//!
//! This is the second half of the transactional outbox. The API wrote each event into the
//! orders table in the same transaction as the state change; DynamoDB Streams delivers
//! every new row to this function at least once, in order per item, and the mapping
//! retries a failed record until it is published, with no limit on attempts (then the
//! record's batch checkpoint moves on). So an event can never be lost between "stored"
//! and "published"; it can be published twice, which is why every event carries a stable
//! id that consumers deduplicate on.
//!
//! Unlimited retries would let one row that can *never* be published (a writer's bug)
//! block its shard for the stream's 24 hours. Such a row goes whole, with its reason, to
//! the relay's dead-letter queue, and the relay moves on: a broken row never blocks the
//! events behind it, and is never silently dropped.

pub mod wiring;

use aws_adapters::runtime::EventFunction;
use aws_adapters::tables::{OUTBOX_SK_PREFIX, OutboxRow};
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use domain::failure::Failure;
use domain::ports::{DeadLetter, DeadLetterSink, EventPublisher, Outgoing, PUBLISH_BATCH_LIMIT};
use lambda_runtime::LambdaEvent;

/// Why one stream record could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The row looks like an outbox row but lacks what the relay needs: a bug in the
    /// writer. Retrying cannot fix it: it goes to the relay's dead-letter queue.
    #[error("outbox row is malformed: {0}")]
    MalformedRow(String),
    /// SNS refused or failed.
    #[error(transparent)]
    Publish(#[from] Failure),
}

/// The relay's outside world: the topic it publishes to, and the dead-letter queue for
/// rows that can never be published.
#[derive(Debug, Clone)]
pub struct Relay<P, D> {
    /// Publishes outbox rows to the order-events topic.
    pub publisher: P,
    /// Takes the rows that can never be published.
    pub dead_letters: D,
}

impl<P: EventPublisher, D: DeadLetterSink> EventFunction<Event> for Relay<P, D> {
    type Response = DynamoDbEventResponse;

    /// Relays one batch. Outbox rows are published in stream order, up to
    /// [`PUBLISH_BATCH_LIMIT`] per request; at the first failure the handler stops and
    /// reports that record, so Lambda checkpoints just before it and retries from there.
    /// Events after the failed one in the same request may already be out: the retry
    /// publishes them again, and consumers deduplicate on the event id, as they do for
    /// any redelivery.
    async fn handle(&self, event: LambdaEvent<Event>) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        let mut pending: Vec<(&EventRecord, OutboxRow)> = Vec::new();
        for record in &event.payload.records {
            let failure = match outbox_row(record) {
                Ok(None) => None,
                Ok(Some(row)) => {
                    pending.push((record, row));
                    if pending.len() == PUBLISH_BATCH_LIMIT {
                        flush(&self.publisher, &mut pending).await
                    } else {
                        None
                    }
                }
                // Publish what came before it first: a checkpoint must not skip them.
                Err(error) => match flush(&self.publisher, &mut pending).await {
                    Some(failure) => Some(failure),
                    None => dead_letter(&self.dead_letters, record, &error).await,
                },
            };
            if let Some(failure) = failure {
                response.batch_item_failures.push(failure);
                return response;
            }
        }
        if let Some(failure) = flush(&self.publisher, &mut pending).await {
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// Sends a row that can never be published to the dead-letter queue, whole (its new
/// image as JSON, the stream record's id as the message id) with the reason, so the
/// relay can move past it; `Some` if that failed too, and the record must be retried.
async fn dead_letter<D: DeadLetterSink>(
    dead_letters: &D,
    record: &EventRecord,
    error: &RelayError,
) -> Option<DynamoDbBatchItemFailure> {
    let reason = error.to_string();
    tracing::error!(
        reason = %reason,
        sequence_number = record.change.sequence_number.as_deref().unwrap_or_default(),
        event_id = %record.event_id,
        "outbox row can never be published: forwarding it to the relay's DLQ"
    );
    aws_adapters::metrics::count(aws_adapters::metrics::POISON_MESSAGES);
    let letter = DeadLetter {
        original_id: Some(record.event_id.clone()),
        body: serde_json::to_string(&record.change.new_image).unwrap_or_default(),
        attributes: Vec::new(),
        reason: reason.clone(),
    };
    match dead_letters.forward(&letter).await {
        Ok(()) => None,
        Err(forward) => Some(failed(
            record,
            &RelayError::MalformedRow(format!(
                "{reason}; forwarding it to the DLQ failed: {forward}"
            )),
        )),
    }
}

/// Logs why `record` could not be relayed and names it as the batch's failure.
fn failed(record: &EventRecord, error: &RelayError) -> DynamoDbBatchItemFailure {
    tracing::error!(
        error = %aws_adapters::telemetry::ErrorChain(error),
        sequence_number = record.change.sequence_number.as_deref().unwrap_or_default(),
        event_id = %record.event_id,
        "relaying stream record failed; it and the records after it will be retried"
    );
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = record.change.sequence_number.clone();
    failure
}

/// Publishes the pending rows in one request; returns the first failed record, if any.
async fn flush<P: EventPublisher>(
    publisher: &P,
    pending: &mut Vec<(&EventRecord, OutboxRow)>,
) -> Option<DynamoDbBatchItemFailure> {
    if pending.is_empty() {
        return None;
    }
    let outgoing: Vec<Outgoing<'_>> = pending
        .iter()
        .map(|(_, row)| Outgoing {
            event_type: &row.event_type,
            correlation_id: &row.correlation_id,
            body: &row.envelope,
        })
        .collect();
    // Boxed: the SDK's request future nests deep enough to overflow the compiler's
    // layout query for `main` otherwise; one allocation per request is nothing.
    let results = Box::pin(publisher.publish_batch(&outgoing)).await;
    let mut results = results.into_iter();
    let mut first_failure = None;
    for (record, row) in pending.iter() {
        let result = results
            .next()
            .unwrap_or_else(|| Err(Failure::Transient("the publisher gave no result".into())));
        match result {
            Ok(()) => tracing::info!(
                event_type = %row.event_type,
                correlation_id = %row.correlation_id,
                outbox_row = %row.sk,
                "event published"
            ),
            Err(error) if first_failure.is_none() => {
                first_failure = Some(failed(record, &RelayError::Publish(error)));
            }
            Err(_) => {}
        }
    }
    pending.clear();
    first_failure
}

/// The record's outbox row; `None` if the record is not an outbox insert.
fn outbox_row(record: &EventRecord) -> Result<Option<OutboxRow>, RelayError> {
    let is_outbox_insert = record.event_name == "INSERT"
        && matches!(
            record.change.new_image.get("sk"),
            Some(serde_dynamo::AttributeValue::S(sk)) if sk.starts_with(OUTBOX_SK_PREFIX)
        );
    if !is_outbox_insert {
        // The mapping's filter should keep these away; tolerate them if it does not.
        tracing::debug!(event_name = %record.event_name, "not an outbox insert; skipped");
        return Ok(None);
    }
    serde_dynamo::from_item(record.change.new_image.clone())
        .map(Some)
        .map_err(|e| RelayError::MalformedRow(e.to_string()))
}

#[cfg(test)]
mod tests;
