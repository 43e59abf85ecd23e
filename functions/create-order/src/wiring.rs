//! How the function is assembled from its settings: shared by `main` and the tests, so
//! the tests run the function exactly as Lambda does, configured from template.yaml.

use aws_adapters::config::Permissions;
use aws_adapters::runtime::Error;
use aws_adapters::{DynamoDbIdempotencyStore, DynamoDbOrderStore};
use aws_config::SdkConfig;
use serde::Deserialize;

use crate::App;

/// The function's settings (see `CreateOrderFunction` in template.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Config {
    /// Table holding orders and their outbox rows.
    pub orders_table: String,
    /// Table holding idempotency records.
    pub idempotency_table: String,
}

/// The function wired to DynamoDB.
pub type LiveApp = App<DynamoDbOrderStore, DynamoDbIdempotencyStore>;

/// Builds the live function from an SDK configuration and its settings.
pub async fn live(sdk: SdkConfig, config: Config) -> Result<LiveApp, Error> {
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(App::new(
        DynamoDbOrderStore::new(dynamodb.clone(), &config.orders_table)
            .with_idempotency_table(&config.idempotency_table),
        DynamoDbIdempotencyStore::new(dynamodb, &config.idempotency_table),
    ))
}

/// Every AWS call this code makes: see [`Permissions`].
pub const AWS_PERMISSIONS: Permissions = &[
    // an earlier response to the same Idempotency-Key
    ("dynamodb:GetItem", "IdempotencyTable"),
    // the idempotency record, in the place-order transaction
    ("dynamodb:PutItem", "IdempotencyTable"),
    // the order and its outbox row, in the same transaction
    ("dynamodb:PutItem", "OrdersTable"),
];
