//! Lambda entry point of the event relay: init once, then relay stream batches.

use event_relay::wiring::{Config, live};
use lambda_runtime::{Error, service_fn};
use shared::telemetry::{invocation, run};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = shared::telemetry::init()?;
    let config = Config::load(&shared::config::process_env)?;
    let relay = live(&shared::aws::load_sdk_config().await, &config);
    let relay = &relay;
    run(
        metrics,
        service_fn(move |event| {
            invocation(event_relay::handle(
                &relay.publisher,
                &relay.dead_letters,
                event,
            ))
        }),
    )
    .await
}
