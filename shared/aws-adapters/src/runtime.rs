//! The one way a function runs on Lambda: every `main.rs` is a single call to [`run`] or
//! [`run_http`] with the function's wiring.
//!
//! Both do the same per-process work in the same order: telemetry (JSON logs, the EMF
//! metrics collector) first, so that even a failing start is logged; then the
//! function's settings from its environment ([`crate::config`]); then the SDK
//! configuration; then the function itself, built once by `build` (its `wiring::live`),
//! whose clients and connection pools every warm invocation reuses. A missing setting
//! or a failing `build` (an unreadable secret) fails the cold start, visibly, before
//! any event is taken. Each invocation then runs inside the invocation span that marks
//! the process's cold start ([`crate::telemetry::invocation`]).

use std::future::Future;

use aws_config::SdkConfig;
use domain::ids::CorrelationId;
use domain::problem::Problem;
use lambda_http::{Body, Request, RequestExt, Response};
/// Why a function could not start or run: what `main` returns.
pub use lambda_runtime::Error;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::http_api;
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

/// A function behind the HTTP API. It says what it does in [`respond`](Self::respond) and
/// names its span in [`span`](Self::span); the HTTP shell around it, the same for every
/// route, is [`handle`](Self::handle).
pub trait HttpFunction: Send + Sync {
    /// The span the request runs in, named after the function and carrying the
    /// correlation id, so that every line it logs can be found by that id, e.g.
    /// `tracing::info_span!("get_order", correlation_id = %correlation_id)`. (Not a
    /// name constant: `tracing` needs a span's name where the macro is written.)
    fn span(correlation_id: &CorrelationId) -> tracing::Span;

    /// Answers one request, or says what went wrong as a [`Problem`]; `correlation_id`
    /// is the one the response will carry, for what the function stores or publishes.
    fn respond(
        &self,
        request: &Request,
        correlation_id: &CorrelationId,
    ) -> impl Future<Output = Result<http::Response<String>, Problem>> + Send;

    /// Answers one request; never fails, so API Gateway never sees a Lambda error. Picks
    /// the correlation id (the client's, else the Lambda request id), runs
    /// [`respond`](Self::respond) in [`span`](Self::span), renders a problem as
    /// problem+json carrying the id, and stamps the id on every response, errors
    /// included, so a client can always quote it.
    fn handle(&self, request: Request) -> impl Future<Output = Response<Body>> + Send {
        async move {
            let request_id = request.lambda_context_ref().map(|c| c.request_id.clone());
            let correlation_id = http_api::correlation_id(request.headers(), request_id.as_deref());
            let response = match self
                .respond(&request, &correlation_id)
                .instrument(Self::span(&correlation_id))
                .await
            {
                Ok(response) => response,
                Err(problem) => {
                    http_api::problem(&problem.with_correlation_id(correlation_id.as_str()))
                }
            };
            http_api::with_correlation_id(response, &correlation_id).map(Body::from)
        }
    }
}

/// Runs an event-driven function: init once, then handle events until Lambda stops the
/// process.
pub async fn run<E, C, A, B, Fut>(build: B) -> Result<(), Error>
where
    E: DeserializeOwned + Send + 'static,
    C: DeserializeOwned,
    A: EventFunction<E>,
    B: FnOnce(SdkConfig, C) -> Fut,
    Fut: Future<Output = Result<A, Error>>,
{
    let metrics = init()?;
    let function = build_once(build).await?;
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
pub async fn run_http<C, A, B, Fut>(build: B) -> Result<(), Error>
where
    C: DeserializeOwned,
    A: HttpFunction,
    B: FnOnce(SdkConfig, C) -> Fut,
    Fut: Future<Output = Result<A, Error>>,
{
    let metrics = init()?;
    let function = build_once(build).await?;
    let function = &function;
    crate::telemetry::run_http(
        metrics,
        lambda_http::service_fn(move |request| {
            invocation(async move { Ok::<_, Error>(function.handle(request).await) })
        }),
    )
    .await
}

/// The cold start's own work, after telemetry: the settings from the process
/// environment (a missing one fails here, before the SDK is even configured), the SDK
/// configuration, then the function's wiring.
async fn build_once<C, A, B, Fut>(build: B) -> Result<A, Error>
where
    C: DeserializeOwned,
    B: FnOnce(SdkConfig, C) -> Fut,
    Fut: Future<Output = Result<A, Error>>,
{
    let config = crate::config::load(&crate::config::process_env)?;
    build(crate::sdk::load_sdk_config().await, config).await
}
