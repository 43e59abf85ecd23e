//! Lambda entry point of the event relay: init once, then relay stream batches.

use event_relay::wiring::{Config, live};
use lambda_runtime::{Error, service_fn};
use shared::telemetry::{invocation, run};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = shared::telemetry::init()?;
    let config = Config::load(&shared::config::process_env)?;
    let publisher = live(&shared::aws::load_sdk_config().await, &config);
    let publisher = &publisher;
    run(
        metrics,
        service_fn(move |event| invocation(event_relay::handle(publisher, event))),
    )
    .await
}
