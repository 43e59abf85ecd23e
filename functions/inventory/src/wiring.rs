//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::config::Permissions;
use aws_adapters::init_phases::timed;
use aws_adapters::runtime::Error;
use aws_adapters::{DynamoDbOrderStore, DynamoDbStockStore, SqsDeadLetters};
use aws_config::SdkConfig;
use serde::Deserialize;

use crate::App;

/// The function's settings (see `InventoryFunction` in template.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Config {
    /// Orders and their outbox.
    pub orders_table: String,
    /// Stock and reservations.
    pub inventory_table: String,
    /// Where poison messages go.
    pub dead_letter_queue_url: String,
}

/// The function wired to AWS.
pub type LiveApp = App<DynamoDbStockStore, SqsDeadLetters>;

/// Builds the live function.
pub async fn live(sdk: SdkConfig, config: Config) -> Result<LiveApp, Error> {
    let dynamodb = timed("client.dynamodb", || aws_sdk_dynamodb::Client::new(&sdk));
    Ok(App::new(
        DynamoDbStockStore::new(
            dynamodb.clone(),
            &config.inventory_table,
            DynamoDbOrderStore::new(dynamodb, &config.orders_table),
        ),
        SqsDeadLetters::new(&sdk, &config.dead_letter_queue_url),
    ))
}

/// Every AWS call this code makes: see [`Permissions`].
pub const AWS_PERMISSIONS: Permissions = &[
    // the order's status when a reservation is refused
    ("dynamodb:GetItem", "OrdersTable"),
    // the status change, in the reservation transaction
    ("dynamodb:UpdateItem", "OrdersTable"),
    // the outbox rows, in the same transaction
    ("dynamodb:PutItem", "OrdersTable"),
    // the conditional stock decrements
    ("dynamodb:UpdateItem", "InventoryTable"),
    // the reservation record
    ("dynamodb:PutItem", "InventoryTable"),
    // forwarding poison messages
    ("sqs:SendMessage", "InventoryDeadLetterQueue"),
];
