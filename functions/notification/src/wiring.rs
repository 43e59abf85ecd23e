//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::config::{Lookup, MissingSetting, required};
use aws_adapters::{DynamoDbIdempotencyStore, SnsEventPublisher, SqsDeadLetters};
use aws_config::SdkConfig;

use crate::App;

/// The function's settings (see `NotificationFunction` in template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    /// Idempotency records (the record of each notification sent).
    pub idempotency_table: String,
    /// Where customer notifications are published.
    pub topic_arn: String,
    /// Where poison messages go.
    pub dead_letter_queue_url: String,
}

impl Config {
    /// Reads the settings; fails the cold start if one is missing.
    pub fn load(lookup: Lookup) -> Result<Self, MissingSetting> {
        Ok(Self {
            idempotency_table: required(lookup, "IDEMPOTENCY_TABLE")?,
            topic_arn: required(lookup, "CUSTOMER_NOTIFICATIONS_TOPIC_ARN")?,
            dead_letter_queue_url: required(lookup, "DEAD_LETTER_QUEUE_URL")?,
        })
    }
}

/// The function wired to AWS.
pub type LiveApp = App<SnsEventPublisher, DynamoDbIdempotencyStore, SqsDeadLetters>;

/// Builds the live function.
pub fn live(sdk: &SdkConfig, config: &Config) -> LiveApp {
    App::new(
        SnsEventPublisher::new(aws_sdk_sns::Client::new(sdk), &config.topic_arn),
        DynamoDbIdempotencyStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &config.idempotency_table,
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
    // claim: reading a held key
    ("dynamodb:GetItem", "IdempotencyTable"),
    // claim and complete: the record of each notification sent
    ("dynamodb:PutItem", "IdempotencyTable"),
    // release after a failure
    ("dynamodb:DeleteItem", "IdempotencyTable"),
    // the notification
    ("sns:Publish", "CustomerNotificationsTopic"),
    // forwarding poison messages
    ("sqs:SendMessage", "NotificationDeadLetterQueue"),
];
