//! The one place AWS SDK configuration is built, and the one place SDK errors become
//! the domain's [`Failure`].
//!
//! `aws_config` reads region and credentials from the environment Lambda provides and
//! honours `AWS_ENDPOINT_URL`, so the same binary talks to AWS when deployed and to the
//! local emulator on a laptop. Build it once per cold start and share the clients: they
//! hold connection pools that warm invocations reuse.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use domain::failure::Failure;

/// The HTTPS client every SDK client sends through: the SDK's own hyper + rustls client,
/// with `ring` as rustls's crypto provider.
///
/// The SDK's default client (its `default-https-client` feature) is the same client with
/// aws-lc-rs, whose C library is the slowest single step of each build, twice in
/// `make bench`. Both verify AWS's certificates against the system's trust store. What
/// ring does not offer is aws-lc's FIPS mode and post-quantum key exchange: a deployment
/// that needs them builds with this crate's `aws-lc` feature.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CRYPTO))
        .build_https()
}

/// rustls's crypto provider: see `https_client`.
#[cfg(not(feature = "aws-lc"))]
const CRYPTO: CryptoMode = CryptoMode::Ring;
#[cfg(feature = "aws-lc")]
const CRYPTO: CryptoMode = CryptoMode::AwsLc;

/// How long one attempt of a call may take, connection included: a DynamoDB, SNS or SQS
/// answer takes milliseconds, so an attempt that has not answered in this time is stuck
/// (a dead connection, a lost packet), and the retry on a fresh connection is the way out.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a whole call may take, every retry and pause included: the budget each AWS
/// call has within its function's timeout. `tests/integration/retry_budget.rs` reads
/// every function's `Timeout` in template.yaml and fails when a call's worst case (this)
/// leaves less than a fifth of it for the rest of the invocation.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);

/// How long opening a connection may take. Within a region that takes milliseconds;
/// one not open after a second is better abandoned for a retry on another, inside the
/// same attempt's time (the SDK's default, 3.1 s, would use up most of an attempt).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Loads the SDK configuration from the environment: region, credentials, endpoint,
/// and the SDK's own retry settings.
///
/// Retries are the SDK's defaults, untouched: its standard mode (exponential backoff with
/// jitter), with whatever the environment adds: `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`,
/// and `AWS_NEW_RETRIES_2026=true`, which template.yaml's Globals set: the SDK's newer
/// retry behaviour, whose first pause after a transient error is tens of milliseconds
/// instead of up to a second, and whose DynamoDB client tries four times. Passing a
/// `RetryConfig` here would replace all of that with fixed values. What this does set is
/// the timeouts, which the SDK leaves open: a call must end within its function's
/// timeout, or Lambda kills the invocation mid-call ([`OPERATION_TIMEOUT`]).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts())
        .load()
        .await
}

/// The timeouts [`load_sdk_config`] sets: see [`ATTEMPT_TIMEOUT`] and
/// [`OPERATION_TIMEOUT`].
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Error codes worth another try that the SDK's own lists do not name: DynamoDB's
/// `TransactionConflictException` (a single write that met a running transaction; the
/// DynamoDB docs say to retry it) and the KMS throttling a table's customer managed key
/// can cause. Everything else comes from the SDK's retry classifier, so a code the SDK
/// learns to retry is classified here too on the next update.
const MORE_TRANSIENT_CODES: &[&str] = &["TransactionConflictException", "KMSThrottlingException"];

/// Whether a failed SDK call may succeed if retried later: the same split the SDK's
/// standard retry strategy makes. Network failures, timeouts, the SDK's throttling and
/// transient error codes (`aws_runtime::retries::classifiers`), and any 5xx are
/// transient; everything else (bad request, access denied, a missing table) is
/// permanent, and retrying it only delays the dead-letter queue.
///
/// A 5xx counts by its status alone: a load balancer or a service in trouble may answer
/// 503 with no error code at all (the reliability runs' outage does), and treating that
/// as permanent would dead-letter a message that only needed a retry.
pub fn is_transient<E>(error: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            THROTTLING_ERRORS.contains(&code)
                || TRANSIENT_ERRORS.contains(&code)
                || MORE_TRANSIENT_CODES.contains(&code)
                || service.raw().status().is_server_error()
        }
        _ => false,
    }
}

/// The one conversion from an SDK error to the domain's [`Failure`]: classified by
/// [`is_transient`], described with the operation and the service's code and message.
/// Every adapter maps its SDK errors through here, so no two places disagree on what
/// is worth a retry.
pub fn failure<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("{operation}: {}", describe(error));
    if is_transient(error) {
        Failure::Transient(message)
    } else {
        Failure::Permanent(message)
    }
}

/// Renders an SDK error with its service code and message, which `Display` alone hides.
pub fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match error {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("UnknownError"),
            service.err().message().unwrap_or("no message")
        ),
        other => crate::telemetry::ErrorChain(other).to_string(),
    }
}

/// A span around one AWS call, named by its operation (`DynamoDB.TransactWriteItems`):
/// whatever is logged during the call names it, and a tracing exporter (X-Ray, OTel) can
/// time it. Use it as `.send().instrument(call_span("SNS.Publish")).await`.
pub fn call_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!("aws_call", aws_operation = operation)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn answer(status: u16, code: Option<&str>) -> SdkError<PutItemError, HttpResponse> {
        let mut metadata = ErrorMetadata::builder();
        if let Some(code) = code {
            metadata = metadata.code(code);
        }
        let raw = HttpResponse::new(
            status.try_into().unwrap_or_else(|_| unreachable!()),
            SdkBody::empty(),
        );
        SdkError::service_error(PutItemError::generic(metadata.build()), raw)
    }

    #[test]
    fn throttling_and_server_errors_are_worth_a_retry() {
        assert!(is_transient(&answer(400, Some("ThrottlingException"))));
        assert!(is_transient(&answer(503, None)), "a bare 503");
        assert!(is_transient(&answer(500, Some("SomethingNew"))));
    }

    #[test]
    fn client_errors_are_not() {
        assert!(!is_transient(&answer(400, Some("ValidationException"))));
        assert!(!is_transient(&answer(403, None)));
    }
}
