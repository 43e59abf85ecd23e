//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::DynamoDbOrderStore;
use aws_adapters::config::Permissions;
use aws_adapters::init_phases::timed;
use aws_adapters::runtime::Error;
use aws_config::SdkConfig;
use serde::Deserialize;

use crate::App;

/// The function's settings (see `GetOrderFunction` in template.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Config {
    /// Table holding orders.
    pub orders_table: String,
}

/// The function wired to DynamoDB.
pub type LiveApp = App<DynamoDbOrderStore>;

/// Builds the live function from an SDK configuration and its settings.
pub async fn live(sdk: SdkConfig, config: Config) -> Result<LiveApp, Error> {
    let dynamodb = timed("client.dynamodb", || aws_sdk_dynamodb::Client::new(&sdk));
    Ok(App::new(DynamoDbOrderStore::new(
        dynamodb,
        &config.orders_table,
    )))
}

/// Every AWS call this code makes: see [`Permissions`].
pub const AWS_PERMISSIONS: Permissions = &[
    // reading the order
    ("dynamodb:GetItem", "OrdersTable"),
];
