//! Lambda entry point of payment: init once (settings, clients, the provider's API key
//! from Secrets Manager), then handle SQS batches.

use lambda_runtime::{Error, service_fn};
use payment::wiring::{Config, live};
use shared::telemetry::{invocation, run};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = shared::telemetry::init()?;
    let config = Config::load(&shared::config::process_env)?;
    let app = live(&shared::aws::load_sdk_config().await, &config).await?;
    let app = &app;
    run(
        metrics,
        service_fn(move |event| invocation(async move { Ok::<_, Error>(app.handle(event).await) })),
    )
    .await
}
