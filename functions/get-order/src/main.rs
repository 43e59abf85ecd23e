//! Lambda entry point for `GET /orders/{id}`: init once, then serve.

use get_order::wiring::{Config, live};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::load(&shared::config::process_env)?;
    let app = live(&shared::aws::load_sdk_config().await, &config);
    let app = &app;
    run(service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(app.handle(request).await)
    }))
    .await
}
