//! Lambda entry point for `GET /orders/{id}`: init once, then serve.

use get_order::wiring::{Config, live};
use lambda_http::{Error, service_fn};
use shared::telemetry::{invocation, run_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = shared::telemetry::init()?;
    let config = Config::load(&shared::config::process_env)?;
    let app = live(&shared::aws::load_sdk_config().await, &config);
    let app = &app;
    run_http(
        metrics,
        service_fn(move |request| {
            invocation(async move { Ok::<_, Error>(app.handle(request).await) })
        }),
    )
    .await
}
