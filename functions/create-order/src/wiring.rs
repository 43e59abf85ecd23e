//! How the function is assembled from its settings: shared by `main` and the tests, so
//! the tests run the function exactly as Lambda does, configured from template.yaml.

use aws_adapters::DynamoDbOrderStore;
use aws_adapters::config::Permissions;
use aws_adapters::init_phases::timed;
use aws_adapters::runtime::Error;
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
pub type LiveApp = App<DynamoDbOrderStore>;

/// Builds the live function from an SDK configuration and its settings.
pub async fn live(sdk: SdkConfig, config: Config) -> Result<LiveApp, Error> {
    let dynamodb = timed("client.dynamodb", || aws_sdk_dynamodb::Client::new(&sdk));
    Ok(App::new(
        DynamoDbOrderStore::new(dynamodb, &config.orders_table)
            .with_idempotency_table(&config.idempotency_table),
    ))
}

/// Every AWS call this code makes: see [`Permissions`].
pub const AWS_PERMISSIONS: Permissions = &[
    // the idempotency record, in the place-order transaction; a key used before comes
    // back with its refusal (ALL_OLD), which PutItem's permission covers: no GetItem
    ("dynamodb:PutItem", "IdempotencyTable"),
    // the order and its outbox row, in the same transaction
    ("dynamodb:PutItem", "OrdersTable"),
];
