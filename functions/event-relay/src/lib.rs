//! The event relay: publishes outbox rows from the orders table's stream to SNS.
//!
//! This is the second half of the transactional outbox. The API wrote each event into the
//! orders table in the same transaction as the state change; DynamoDB Streams delivers
//! every new row to this function at least once, in order per item, and retries until it
//! is published (then the record's batch checkpoint moves on). So an event can never be
//! lost between "stored" and "published"; it can be published twice, which is why every
//! event carries a stable id that consumers deduplicate on.

pub mod wiring;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use shared::adapters::OUTBOX_SK_PREFIX;
use shared::ports::{EventPublisher, PublishError};

/// The attributes of an outbox row the relay needs. It publishes `envelope` verbatim:
/// the relay never re-encodes an event, so what consumers get is exactly what was stored.
#[derive(Debug, Deserialize)]
struct OutboxRow {
    sk: String,
    event_type: String,
    correlation_id: String,
    envelope: String,
}

/// Why one stream record could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The row looks like an outbox row but lacks what the relay needs: a bug in the
    /// writer. Retrying cannot fix it; after the mapping's retries it goes to the
    /// failure destination with its stream coordinates.
    #[error("outbox row is malformed: {0}")]
    MalformedRow(String),
    /// SNS refused or failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Relays one batch. Records are published in stream order; at the first failure the
/// handler stops and reports that record, so Lambda checkpoints just before it and
/// retries from there: nothing after a failed record is published ahead of it.
pub async fn handle<P: EventPublisher>(
    publisher: &P,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.payload.records {
        if let Err(error) = relay(publisher, record).await {
            tracing::error!(
                error = %shared::telemetry::ErrorChain(&error),
                sequence_number = record.change.sequence_number.as_deref().unwrap_or_default(),
                event_id = %record.event_id,
                "relaying stream record failed; it and the records after it will be retried"
            );
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            break;
        }
    }
    Ok(response)
}

async fn relay<P: EventPublisher>(publisher: &P, record: &EventRecord) -> Result<(), RelayError> {
    let is_outbox_insert = record.event_name == "INSERT"
        && matches!(
            record.change.new_image.get("sk"),
            Some(serde_dynamo::AttributeValue::S(sk)) if sk.starts_with(OUTBOX_SK_PREFIX)
        );
    if !is_outbox_insert {
        // The mapping's filter should keep these away; tolerate them if it does not.
        tracing::debug!(event_name = %record.event_name, "not an outbox insert; skipped");
        return Ok(());
    }
    let row: OutboxRow = serde_dynamo::from_item(record.change.new_image.clone())
        .map_err(|e| RelayError::MalformedRow(e.to_string()))?;
    publisher
        .publish(&row.event_type, &row.correlation_id, &row.envelope)
        .await?;
    tracing::info!(
        event_type = %row.event_type,
        correlation_id = %row.correlation_id,
        outbox_row = %row.sk,
        "event published"
    );
    Ok(())
}
