//! Lambda entry point for `POST /orders`. Thin on purpose: build everything once per cold
//! start, then hand each request to [`create_order::App::handle`].

use create_order::wiring::{Config, live};
use lambda_http::{Error, service_fn};
use shared::telemetry::{invocation, run_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = shared::telemetry::init()?;
    // Init work runs once per cold start; warm invocations reuse the clients and their
    // connection pools.
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
