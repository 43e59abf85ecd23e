//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::config::Permissions;
use aws_adapters::init_phases::{SECRET, timed, timed_async};
use aws_adapters::runtime::Error;
use aws_adapters::{DynamoDbOrderStore, SqsDeadLetters};
use aws_config::SdkConfig;
use serde::Deserialize;
use tracing::Instrument;

use crate::App;
use crate::simulated::SimulatedGateway;

/// The function's settings (see `PaymentFunction` in template.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Config {
    /// Orders and their outbox.
    pub orders_table: String,
    /// The simulated provider's ledger.
    pub payments_table: String,
    /// ARN of the provider's API key in Secrets Manager (the ARN, never the key).
    #[serde(rename = "PAYMENT_GATEWAY_SECRET_ARN")]
    pub gateway_secret_arn: String,
    /// Where poison messages go.
    pub dead_letter_queue_url: String,
}

/// Initialisation failed: the cold start fails, visibly, before any message is taken.
#[derive(Debug, thiserror::Error)]
#[error("reading the payment provider's API key from Secrets Manager failed: {0}")]
pub struct SecretError(String);

/// The function wired to AWS.
pub type LiveApp = App<DynamoDbOrderStore, SimulatedGateway, SqsDeadLetters>;

/// Builds the live function: fetches the provider's API key once (per cold start) and
/// keeps it in memory for every invocation of this process.
pub async fn live(sdk: SdkConfig, config: Config) -> Result<LiveApp, Error> {
    let secrets = timed("client.secretsmanager", || {
        aws_sdk_secretsmanager::Client::new(&sdk)
    });
    let fetch = secrets
        .get_secret_value()
        .secret_id(&config.gateway_secret_arn)
        .send()
        .instrument(aws_adapters::sdk::call_span(
            "SecretsManager.GetSecretValue",
        ));
    let api_key = timed_async(SECRET, fetch)
        .await
        .map_err(|e| SecretError(aws_adapters::sdk::describe(&e)))?
        .secret_string
        .ok_or_else(|| SecretError("the secret has no string value".into()))?;
    let dynamodb = timed("client.dynamodb", || aws_sdk_dynamodb::Client::new(&sdk));
    Ok(App::new(
        DynamoDbOrderStore::new(dynamodb.clone(), &config.orders_table),
        SimulatedGateway::new(dynamodb, &config.payments_table, api_key),
        SqsDeadLetters::new(&sdk, &config.dead_letter_queue_url),
    ))
}

/// Every AWS call this code makes: see [`Permissions`].
pub const AWS_PERMISSIONS: Permissions = &[
    // checking the order's status before charging or refunding
    ("dynamodb:GetItem", "OrdersTable"),
    // the status change, in its transaction
    ("dynamodb:UpdateItem", "OrdersTable"),
    // the outbox rows, in the same transaction
    ("dynamodb:PutItem", "OrdersTable"),
    // the simulated provider's ledger: an entry per key, or the one that stands (ALL_OLD)
    ("dynamodb:PutItem", "PaymentsTable"),
    // the simulated provider's attempt counter
    ("dynamodb:UpdateItem", "PaymentsTable"),
    // the provider's API key, once per cold start
    ("secretsmanager:GetSecretValue", "PaymentGatewaySecret"),
    // forwarding poison messages
    ("sqs:SendMessage", "PaymentDeadLetterQueue"),
];
