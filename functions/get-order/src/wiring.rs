//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::DynamoDbOrderStore;
use aws_adapters::config::{Lookup, MissingSetting, required};
use aws_config::SdkConfig;

use crate::App;

/// The function's settings (see `GetOrderFunction` in template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    /// Table holding orders.
    pub orders_table: String,
}

impl Config {
    /// Reads the settings; fails the cold start if one is missing.
    pub fn load(lookup: Lookup) -> Result<Self, MissingSetting> {
        Ok(Self {
            orders_table: required(lookup, "ORDERS_TABLE")?,
        })
    }
}

/// The function wired to DynamoDB.
pub type LiveApp = App<DynamoDbOrderStore>;

/// Builds the live function from an SDK configuration and its settings.
pub fn live(sdk: &SdkConfig, config: &Config) -> LiveApp {
    App::new(DynamoDbOrderStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &config.orders_table,
    ))
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
    // reading the order
    ("dynamodb:GetItem", "OrdersTable"),
];
