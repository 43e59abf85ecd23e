//! Lambda entry point of notification: init once, then handle SQS batches.

use lambda_runtime::{Error, service_fn};
use notification::wiring::{Config, live};
use shared::telemetry::{invocation, run};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = shared::telemetry::init()?;
    let config = Config::load(&shared::config::process_env)?;
    let app = live(&shared::aws::load_sdk_config().await, &config);
    let app = &app;
    run(
        metrics,
        service_fn(move |event| invocation(async move { Ok::<_, Error>(app.handle(event).await) })),
    )
    .await
}
