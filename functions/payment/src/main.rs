//! Lambda entry point of payment: init once (settings, clients, the provider's API key
//! from Secrets Manager), then handle SQS batches.

use lambda_runtime::{Error, run, service_fn};
use payment::wiring::{Config, live};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::load(&shared::config::process_env)?;
    let app = live(&shared::aws::load_sdk_config().await, &config).await?;
    let app = &app;
    run(service_fn(move |event| async move {
        Ok::<_, Error>(app.handle(event).await)
    }))
    .await
}
