//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::config::{Lookup, MissingSetting, required};
use aws_adapters::{DynamoDbIdempotencyStore, DynamoDbOrderStore, SqsDeadLetters};
use aws_config::SdkConfig;

use crate::App;
use crate::reservations::DynamoDbReservations;

/// The function's settings (see `InventoryFunction` in template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    /// Orders and their outbox.
    pub orders_table: String,
    /// Idempotency records.
    pub idempotency_table: String,
    /// Stock and reservations.
    pub inventory_table: String,
    /// Where poison messages go.
    pub dead_letter_queue_url: String,
}

impl Config {
    /// Reads the settings; fails the cold start if one is missing.
    pub fn load(lookup: Lookup) -> Result<Self, MissingSetting> {
        Ok(Self {
            orders_table: required(lookup, "ORDERS_TABLE")?,
            idempotency_table: required(lookup, "IDEMPOTENCY_TABLE")?,
            inventory_table: required(lookup, "INVENTORY_TABLE")?,
            dead_letter_queue_url: required(lookup, "DEAD_LETTER_QUEUE_URL")?,
        })
    }
}

/// The function wired to AWS.
pub type LiveApp = App<SqsDeadLetters>;

/// Builds the live function.
pub fn live(sdk: &SdkConfig, config: &Config) -> LiveApp {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    App::new(
        DynamoDbReservations::new(
            &config.inventory_table,
            DynamoDbOrderStore::new(dynamodb.clone(), &config.orders_table),
            DynamoDbIdempotencyStore::new(dynamodb, &config.idempotency_table),
        ),
        SqsDeadLetters::new(aws_sdk_sqs::Client::new(sdk), &config.dead_letter_queue_url),
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
    // the order's status when a reservation is refused
    ("dynamodb:GetItem", "OrdersTable"),
    // the status change, in the reservation transaction
    ("dynamodb:UpdateItem", "OrdersTable"),
    // the outbox rows, in the same transaction
    ("dynamodb:PutItem", "OrdersTable"),
    // the event's key, in the same transaction
    ("dynamodb:PutItem", "IdempotencyTable"),
    // the conditional stock decrements
    ("dynamodb:UpdateItem", "InventoryTable"),
    // the reservation record
    ("dynamodb:PutItem", "InventoryTable"),
    // forwarding poison messages
    ("sqs:SendMessage", "InventoryDeadLetterQueue"),
];
