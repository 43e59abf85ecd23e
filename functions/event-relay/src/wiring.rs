//! How the function is assembled from its settings: shared by `main` and the tests.

use aws_config::SdkConfig;
use shared::adapters::SnsEventPublisher;
use shared::config::{Lookup, MissingSetting, required};

/// The function's settings (see `EventRelayFunction` in template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    /// The topic every order event is published to.
    pub topic_arn: String,
}

impl Config {
    /// Reads the settings; fails the cold start if one is missing.
    pub fn load(lookup: Lookup) -> Result<Self, MissingSetting> {
        Ok(Self {
            topic_arn: required(lookup, "ORDER_EVENTS_TOPIC_ARN")?,
        })
    }
}

/// The publisher wired to SNS.
pub fn live(sdk: &SdkConfig, config: &Config) -> SnsEventPublisher {
    SnsEventPublisher::new(aws_sdk_sns::Client::new(sdk), &config.topic_arn)
}

/// Every AWS call this function's code makes, as (IAM action, template resource). The
/// function's role in template.yaml must grant exactly these (plus what Lambda itself
/// needs for logs, traces and the event source); `tests/integration/least_privilege.rs`
/// fails when the two disagree, so a new SDK call means updating both together.
pub const AWS_PERMISSIONS: &[(&str, &str)] = &[
    // publishing outbox rows
    ("sns:Publish", "OrderEventsTopic"),
];
