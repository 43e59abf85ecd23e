//! Lambda entry point of the event relay: init once, then relay stream batches.

use event_relay::wiring::{Config, live};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::load(&shared::config::process_env)?;
    let publisher = live(&shared::aws::load_sdk_config().await, &config);
    let publisher = &publisher;
    run(service_fn(move |event| async move {
        event_relay::handle(publisher, event).await
    }))
    .await
}
