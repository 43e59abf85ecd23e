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

pub use dynamodb_idempotency::DynamoDbIdempotencyStore;
pub use dynamodb_orders::{DynamoDbOrderStore, OUTBOX_SK_PREFIX, OUTBOX_TTL};
pub use sns_publisher::SnsEventPublisher;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

/// Maps an SDK error to the store's transient/permanent split.
pub(crate) fn store_error<E, R>(operation: &str, error: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = format!("{operation}: {}", crate::aws::describe(error));
    if crate::aws::is_transient(error) {
        StoreError::Transient(message)
    } else {
        StoreError::Permanent(message)
    }
}
