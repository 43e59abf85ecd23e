//! Lambda entry point for `POST /orders`. Thin on purpose: build everything once per cold
//! start, then hand each request to [`create_order::App::handle`].

use create_order::wiring::{Config, live};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    // Init work runs once per cold start; warm invocations reuse the clients and their
    // connection pools.
    let config = Config::load(&shared::config::process_env)?;
    let app = live(&shared::aws::load_sdk_config().await, &config);
    let app = &app;
    run(service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(app.handle(request).await)
    }))
    .await
}
