//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::config::Permissions;
use aws_adapters::init_phases::timed;
use aws_adapters::runtime::Error;
use aws_adapters::{SnsEventPublisher, SqsDeadLetters};
use aws_config::SdkConfig;
use serde::Deserialize;

use crate::Relay;

/// The function's settings (see `EventRelayFunction` in template.yaml).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Config {
    /// The topic every order event is published to.
    #[serde(rename = "ORDER_EVENTS_TOPIC_ARN")]
    pub topic_arn: String,
    /// Where an outbox row that can never be published goes, whole, with its reason.
    #[serde(rename = "RELAY_DEAD_LETTER_QUEUE_URL")]
    pub dead_letter_queue_url: String,
}

/// The relay as deployed.
pub type LiveRelay = Relay<SnsEventPublisher, SqsDeadLetters>;

/// The relay wired to SNS and SQS.
pub async fn live(sdk: SdkConfig, config: Config) -> Result<LiveRelay, Error> {
    let sns = timed("client.sns", || aws_sdk_sns::Client::new(&sdk));
    Ok(Relay {
        publisher: SnsEventPublisher::new(sns, &config.topic_arn),
        dead_letters: SqsDeadLetters::new(&sdk, &config.dead_letter_queue_url),
    })
}

/// Every AWS call this code makes: see [`Permissions`].
pub const AWS_PERMISSIONS: Permissions = &[
    // publishing outbox rows
    ("sns:Publish", "OrderEventsTopic"),
    // an outbox row that can never be published, kept whole with its reason
    ("sqs:SendMessage", "RelayDeadLetterQueue"),
];
