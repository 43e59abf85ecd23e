//! How the function is assembled from its settings: shared by `main` and the tests, so
//! the tests run the function exactly as Lambda does, configured from template.yaml.

use aws_adapters::config::{Lookup, MissingSetting, required};
use aws_adapters::{DynamoDbIdempotencyStore, DynamoDbOrderStore};
use aws_config::SdkConfig;

use crate::App;

/// The function's settings (see `CreateOrderFunction` in template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    /// Table holding orders and their outbox rows.
    pub orders_table: String,
    /// Table holding idempotency records.
    pub idempotency_table: String,
}

impl Config {
    /// Reads the settings; fails the cold start if one is missing.
    pub fn load(lookup: Lookup) -> Result<Self, MissingSetting> {
        Ok(Self {
            orders_table: required(lookup, "ORDERS_TABLE")?,
            idempotency_table: required(lookup, "IDEMPOTENCY_TABLE")?,
        })
    }
}

/// The function wired to DynamoDB.
pub type LiveApp = App<DynamoDbOrderStore, DynamoDbIdempotencyStore>;

/// Builds the live function from an SDK configuration and its settings.
pub fn live(sdk: &SdkConfig, config: &Config) -> LiveApp {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    App::new(
        DynamoDbOrderStore::new(dynamodb.clone(), &config.orders_table)
            .with_idempotency_table(&config.idempotency_table),
        DynamoDbIdempotencyStore::new(dynamodb, &config.idempotency_table),
    )
}

/// What `main` runs once per cold start: the settings from the process environment,
/// then the function.
pub async fn from_env(sdk: SdkConfig) -> Result<LiveApp, aws_adapters::runtime::Error> {
    Ok(live(
        &sdk,
        &Config::load(&aws_adapters::config::process_env)?,
    ))
}

/// Every AWS call this function's code makes, as (IAM action, template resource). The
/// function's role in template.yaml must grant exactly these (plus what Lambda itself
/// needs for logs, traces and the event source); `tests/integration/least_privilege.rs`
/// fails when the two disagree, so a new SDK call means updating both together.
pub const AWS_PERMISSIONS: &[(&str, &str)] = &[
    // an earlier response to the same Idempotency-Key
    ("dynamodb:GetItem", "IdempotencyTable"),
    // the idempotency record, in the place-order transaction
    ("dynamodb:PutItem", "IdempotencyTable"),
    // the order and its outbox row, in the same transaction
    ("dynamodb:PutItem", "OrdersTable"),
];
