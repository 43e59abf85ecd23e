//! The one way a function runs on Lambda: every `main.rs` is a single call to [`run`] or
//! [`run_http`] with the function's wiring.
//!
//! Both do the same per-process work in the same order: telemetry (JSON logs, the EMF
//! metrics collector) first, so that even a failing start is logged; then the
//! function's settings from its environment ([`crate::config`]); then the SDK
//! configuration; then the function itself, built once by `build` (its `wiring::live`),
//! whose clients and connection pools every warm invocation reuses. Each step is timed
//! and the times written on one log line ([`crate::init_phases`]). A missing setting
//! or a failing `build` (an unreadable secret) fails the cold start, visibly, before
//! any event is taken. Each invocation then runs inside the invocation span that marks
//! the process's cold start ([`crate::telemetry::invocation`]).

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;

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
use crate::init_phases::{self, timed, timed_async};
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
    let metrics = timed(init_phases::TELEMETRY, init)?;
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
    let metrics = timed(init_phases::TELEMETRY, init)?;
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
    let config = timed(init_phases::SETTINGS, || {
        let config = crate::config::load(&crate::config::process_env)?;
        check_trust_store(std::env::var_os(TRUST_STORE_VARIABLE))?;
        Ok::<_, Error>(config)
    })?;
    let sdk = timed_async(init_phases::SDK_CONFIG, crate::sdk::load_sdk_config()).await;
    let function = timed_async(init_phases::WIRING, build(sdk, config)).await?;
    init_phases::report();
    Ok(function)
}

/// Where the TLS stack reads the certificate authorities it trusts (template.yaml's
/// Globals point it at Amazon Linux 2023's bundle).
pub const TRUST_STORE_VARIABLE: &str = "SSL_CERT_FILE";

/// `SSL_CERT_FILE` names a file that is not there.
#[derive(Debug, thiserror::Error)]
#[error(
    "SSL_CERT_FILE names {0}, which is not a file: no AWS endpoint's certificate could be \
     verified (point it at the runtime's CA bundle, or remove it)"
)]
pub struct MissingTrustStore(PathBuf);

/// Fails the cold start when `SSL_CERT_FILE` names no file. rustls only logs a warning
/// then and trusts nothing, so every AWS call would fail later, one by one, with a
/// certificate error far from its cause.
fn check_trust_store(file: Option<OsString>) -> Result<(), MissingTrustStore> {
    match file.map(PathBuf::from) {
        Some(path) if !path.is_file() => Err(MissingTrustStore(path)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trust_store_that_is_not_there_fails_the_cold_start_naming_it() {
        let missing = check_trust_store(Some("/nowhere/ca-bundle.crt".into()));
        let message = missing.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(message.contains("/nowhere/ca-bundle.crt"), "{message}");
        assert!(
            check_trust_store(None).is_ok(),
            "unset: the system's own store"
        );
        let here = std::env::current_exe().map(OsString::from).ok();
        assert!(check_trust_store(here).is_ok(), "an existing file");
    }
}
