//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_adapters::config::{Lookup, MissingSetting, required};
use aws_adapters::{SnsEventPublisher, SqsDeadLetters};
use aws_config::SdkConfig;

use crate::Relay;

/// The function's settings (see `EventRelayFunction` in template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    /// The topic every order event is published to.
    pub topic_arn: String,
    /// Where an outbox row that can never be published goes, whole, with its reason.
    pub dead_letter_queue_url: String,
}

impl Config {
    /// Reads the settings; fails the cold start if one is missing.
    pub fn load(lookup: Lookup) -> Result<Self, MissingSetting> {
        Ok(Self {
            topic_arn: required(lookup, "ORDER_EVENTS_TOPIC_ARN")?,
            dead_letter_queue_url: required(lookup, "RELAY_DEAD_LETTER_QUEUE_URL")?,
        })
    }
}

/// The relay as deployed.
pub type LiveRelay = Relay<SnsEventPublisher, SqsDeadLetters>;

/// The relay wired to SNS and SQS.
pub fn live(sdk: &SdkConfig, config: &Config) -> LiveRelay {
    Relay {
        publisher: SnsEventPublisher::new(aws_sdk_sns::Client::new(sdk), &config.topic_arn),
        dead_letters: SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(sdk),
            &config.dead_letter_queue_url,
        ),
    }
}

/// What `main` runs once per cold start: the settings from the process environment,
/// then the relay.
pub async fn from_env(sdk: SdkConfig) -> Result<LiveRelay, aws_adapters::runtime::Error> {
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
    // publishing outbox rows
    ("sns:Publish", "OrderEventsTopic"),
    // an outbox row that can never be published, kept whole with its reason
    ("sqs:SendMessage", "RelayDeadLetterQueue"),
];
