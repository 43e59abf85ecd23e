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
