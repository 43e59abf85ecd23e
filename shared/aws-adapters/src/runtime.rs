//! The one way a function runs on Lambda: every `main.rs` is a single call to [`run`] or
//! [`run_http`] with the function's wiring.
//!
//! Both do the same per-process work in the same order: telemetry (JSON logs, the EMF
//! metrics collector) first, so that even a failing start is logged; then the SDK
//! configuration; then the function itself, built once from its settings by `build`,
//! whose clients and connection pools every warm invocation reuses. A `build` that
//! fails (a missing setting, an unreadable secret) fails the cold start, visibly, before
//! any event is taken. Each invocation then runs inside the invocation span that marks
//! the process's cold start ([`crate::telemetry::invocation`]).

use std::future::Future;

use aws_config::SdkConfig;
/// Why a function could not start or run: what `main` returns.
pub use lambda_runtime::Error;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::telemetry::{init, invocation};

/// A function an event source invokes: an SQS queue's batches, a DynamoDB stream's.
pub trait EventFunction<E>: Send + Sync {
    /// What it answers Lambda: for a batch, which records failed (and only those are
    /// retried). There is no error: a failed record is reported in the response, never
    /// by failing the invocation, which would retry the whole batch.
    type Response: Serialize;

    /// Handles one invocation's event.
    fn handle(&self, event: LambdaEvent<E>) -> impl Future<Output = Self::Response> + Send;
}

/// A function behind the HTTP API: every request gets a response, errors included.
pub trait HttpFunction: Send + Sync {
    /// Answers one request.
    fn handle(
        &self,
        request: lambda_http::Request,
    ) -> impl Future<Output = lambda_http::Response<lambda_http::Body>> + Send;
}

/// Runs an event-driven function: init once, then handle events until Lambda stops the
/// process.
pub async fn run<E, A, B, Fut>(build: B) -> Result<(), Error>
where
    E: DeserializeOwned + Send + 'static,
    A: EventFunction<E>,
    B: FnOnce(SdkConfig) -> Fut,
    Fut: Future<Output = Result<A, Error>>,
{
    let metrics = init()?;
    let function = build(crate::sdk::load_sdk_config().await).await?;
    let function = &function;
    crate::telemetry::run(
        metrics,
        // Boxed: a handler's future nests the SDK's request futures deep enough to
        // overflow the compiler's layout query for `main` (the relay's does); one
        // allocation per invocation is nothing.
        service_fn(move |event| {
            invocation(async move { Ok::<_, Error>(Box::pin(function.handle(event)).await) })
        }),
    )
    .await
}

/// Runs an HTTP API function: init once, then answer requests until Lambda stops the
/// process.
pub async fn run_http<A, B, Fut>(build: B) -> Result<(), Error>
where
    A: HttpFunction,
    B: FnOnce(SdkConfig) -> Fut,
    Fut: Future<Output = Result<A, Error>>,
{
    let metrics = init()?;
    let function = build(crate::sdk::load_sdk_config().await).await?;
    let function = &function;
    crate::telemetry::run_http(
        metrics,
        lambda_http::service_fn(move |request| {
            invocation(async move { Ok::<_, Error>(function.handle(request).await) })
        }),
    )
    .await
}
