//! Hello world on `lambda_runtime`, built with the same release profile as the
//! functions. It does no init work of its own, so its time from process start to the
//! first Runtime API `next` request is the floor a function's cold start cannot go
//! below: `make bench` reports every function's init as a ratio to it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
