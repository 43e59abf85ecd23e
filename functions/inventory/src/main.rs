//! Lambda entry point of inventory: init once, then handle SQS batches.

use inventory::wiring::{Config, live};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::load(&shared::config::process_env)?;
    let app = live(&shared::aws::load_sdk_config().await, &config);
    let app = &app;
    run(service_fn(move |event| async move {
        Ok::<_, Error>(app.handle(event).await)
    }))
    .await
}
