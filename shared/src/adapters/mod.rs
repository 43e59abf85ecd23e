//! The ports implemented with the real AWS SDK clients.
//!
//! Item layout of the orders table (single-table design, `pk` + `sk`):
//!
//! | item        | pk               | sk               | notable attributes                       |
//! |-------------|------------------|------------------|------------------------------------------|
//! | order       | `ORDER#<id>`     | `ORDER`          | the [`crate::order::Order`] fields       |
//! | outbox row  | `ORDER#<id>`     | `EVENT#<eventid>`| `envelope` (JSON), `event_type`, TTL     |
//!
//! The outbox rows are what the event relay publishes from the table's stream.

mod dynamodb_idempotency;
mod dynamodb_orders;
mod sns_publisher;
mod sqs_dead_letters;

pub use dynamodb_idempotency::DynamoDbIdempotencyStore;
pub use dynamodb_orders::{DynamoDbOrderStore, OUTBOX_SK_PREFIX, OUTBOX_TTL};
pub use sns_publisher::SnsEventPublisher;
pub use sqs_dead_letters::{ORIGINAL_ID_ATTRIBUTE, REASON_ATTRIBUTE, SqsDeadLetters};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use crate::ports::StoreError;

/// Maps an SDK error to the store's transient/permanent split (for adapters in function crates too).
pub fn store_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("{operation}: {}", crate::aws::describe(error));
    if crate::aws::is_transient(error) {
        StoreError::Transient(message)
    } else {
        StoreError::Permanent(message)
    }
}

/// The per-item cancellation codes of a cancelled transaction (`None` for items that
/// were fine), or `None` if the error is something else.
pub fn cancellation_codes<R>(
    error: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<Option<String>>> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().filter(|c| *c != "None").map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}
