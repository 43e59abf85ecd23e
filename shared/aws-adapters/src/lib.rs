//! The AWS side of every function: the adapters that implement the domain's ports with
//! the AWS SDK, and the Lambda plumbing around a handler.
//!
//! - Driven adapters, one per port: [`DynamoDbOrderStore`], [`DynamoDbIdempotencyStore`],
//!   [`DynamoDbStockStore`], [`SnsEventPublisher`], [`SqsDeadLetters`]; [`tables`] holds
//!   the table's item layout, and [`transaction`] the transactions that span adapters,
//!   their items named.
//! - The SDK configuration built once per cold start ([`sdk`]) and the settings read from
//!   the environment ([`config`]).
//! - The way a function runs: [`runtime`] (one call in `main`), [`consumer`] (the SQS
//!   batch loop), [`http_api`] (what every HTTP function shares), [`telemetry`] and
//!   [`metrics`], and [`init_phases`] (where a cold start's time goes).

pub mod config;
pub mod consumer;
pub mod contention;
mod dynamodb_idempotency;
mod dynamodb_orders;
mod dynamodb_stock;
pub mod http_api;
pub mod init_phases;
pub mod metrics;
pub mod runtime;
pub mod sdk;
mod sns_publisher;
mod sqs_dead_letters;
pub mod tables;
pub mod telemetry;
pub mod transaction;

pub use contention::{
    CONTENTION_ATTEMPTS, CONTENTION_MAX_PAUSE, CONTENTION_WINDOW, Cancellation, Tried,
    retry_contention,
};
pub use dynamodb_idempotency::{DynamoDbIdempotencyStore, record_from_item};
pub use dynamodb_orders::DynamoDbOrderStore;
pub use dynamodb_stock::DynamoDbStockStore;
pub use sns_publisher::SnsEventPublisher;
pub use sqs_dead_letters::{ORIGINAL_ID_ATTRIBUTE, REASON_ATTRIBUTE, SqsDeadLetters};
pub use transaction::{Sent, Transaction};
