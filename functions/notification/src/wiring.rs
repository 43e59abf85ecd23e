//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::config::Permissions;
use aws_adapters::init_phases::timed;
use aws_adapters::runtime::Error;
use aws_adapters::{DynamoDbIdempotencyStore, SnsEventPublisher, SqsDeadLetters};
use aws_config::SdkConfig;
use serde::Deserialize;

use crate::App;

/// The function's settings (see `NotificationFunction` in template.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Config {
    /// Idempotency records (the record of each notification sent).
    pub idempotency_table: String,
    /// Where customer notifications are published.
    #[serde(rename = "CUSTOMER_NOTIFICATIONS_TOPIC_ARN")]
    pub topic_arn: String,
    /// Where poison messages go.
    pub dead_letter_queue_url: String,
}

/// The function wired to AWS.
pub type LiveApp = App<SnsEventPublisher, DynamoDbIdempotencyStore, SqsDeadLetters>;

/// Builds the live function.
pub async fn live(sdk: SdkConfig, config: Config) -> Result<LiveApp, Error> {
    let sns = timed("client.sns", || aws_sdk_sns::Client::new(&sdk));
    let dynamodb = timed("client.dynamodb", || aws_sdk_dynamodb::Client::new(&sdk));
    Ok(App::new(
        SnsEventPublisher::new(sns, &config.topic_arn),
        DynamoDbIdempotencyStore::new(dynamodb, &config.idempotency_table),
        SqsDeadLetters::new(&sdk, &config.dead_letter_queue_url),
    ))
}

/// Every AWS call this code makes: see [`Permissions`].
pub const AWS_PERMISSIONS: Permissions = &[
    // claim and complete: the record of each notification sent; a held key comes back
    // with the claim's refusal (ALL_OLD)
    ("dynamodb:PutItem", "IdempotencyTable"),
    // release after a failure
    ("dynamodb:DeleteItem", "IdempotencyTable"),
    // the notification
    ("sns:Publish", "CustomerNotificationsTopic"),
    // forwarding poison messages
    ("sqs:SendMessage", "NotificationDeadLetterQueue"),
];
