//! What every HTTP function shares: correlation ids, response building, and the answer
//! to a failed order store. [`crate::runtime::HttpFunction::handle`] puts them together
//! around each handler, so a handler only builds its own responses and problems.
//!
//! Built on the `http` crate's types, which `lambda_http` uses too, so a response turns
//! into Lambda's with `.map(Body::from)`.

use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use domain::failure::Failure;
use domain::ids::{Caller, CorrelationId};
use domain::problem::{self, Problem, ProblemKind};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

use crate::telemetry::ErrorChain;

/// Header a client may send to choose the correlation id, and in which every response
/// reports the one in use.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The correlation id for a request: the client's `X-Correlation-Id` when present and
/// valid, else the fallback (the Lambda request id), else a fresh one.
pub fn correlation_id(headers: &HeaderMap, fallback: Option<&str>) -> CorrelationId {
    headers
        .get(CORRELATION_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(CorrelationId::parse)
        .or_else(|| fallback.and_then(CorrelationId::parse))
        .unwrap_or_else(CorrelationId::generate)
}

/// Who called: the IAM principal API Gateway authenticated the request as
/// (`requestContext.identity.userArn`; the API takes only SigV4-signed requests, see
/// docs/openapi.yaml). Orders belong to it and Idempotency-Keys are scoped by it.
///
/// Without one the API is wired wrong (a route without IAM auth), not called wrong, so
/// the answer is a 500 with the cause logged, and nothing is read or stored for nobody.
pub fn caller(request: &lambda_http::Request) -> Result<Caller, Problem> {
    let arn = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.identity.user_arn.as_deref(),
        _ => None,
    };
    arn.and_then(Caller::parse).ok_or_else(|| {
        tracing::error!(
            "the request has no caller identity (requestContext.identity.userArn): is the route's authorization AWS_IAM?"
        );
        Problem::new(
            ProblemKind::Internal,
            "the API could not tell who is calling; the error is logged with this correlation id",
        )
    })
}

/// `request` with the identity API Gateway attaches to a request signed by `caller`
/// (an IAM principal's ARN): for tests and tools that call a handler directly, without
/// API Gateway in front.
pub fn with_caller(request: lambda_http::Request, caller: &str) -> lambda_http::Request {
    let mut context =
        lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext::default();
    context.identity.user_arn = Some(caller.to_owned());
    request.with_request_context(RequestContext::ApiGatewayV1(context))
}

/// A JSON response.
pub fn json(status: u16, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A problem+json response, with `Retry-After` when the problem asks for one.
pub fn problem(problem: &Problem) -> Response<String> {
    let mut response = Response::new(problem.to_json());
    *response.status_mut() =
        StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(problem::CONTENT_TYPE),
    );
    if let Some(seconds) = problem.retry_after_seconds() {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Stamps the correlation id on a response, so clients can quote it.
pub fn with_correlation_id<B>(
    mut response: Response<B>,
    correlation_id: &CorrelationId,
) -> Response<B> {
    if let Ok(value) = HeaderValue::from_str(correlation_id.as_str()) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// How a handler words a failed order-store call: the log line's message and what each
/// answer tells the client. The rest is the same for every handler, in [`store_problem`].
#[derive(Debug, Clone, Copy)]
pub struct StoreCall {
    /// The ERROR line's message, e.g. `"reading order failed"`.
    pub failed: &'static str,
    /// The 503's detail: how to retry safely, e.g. `"the order store is busy; retry"`.
    pub busy: &'static str,
    /// The 500's detail: what could not be done; the cause stays in the log.
    pub broken: &'static str,
}

/// The problem for a failed order-store call, logged once at ERROR with its cause. A
/// transient failure (throttling, a timeout, a conflict) is a 503 with `Retry-After: 1`,
/// because the same request will likely succeed in a moment; anything else is a 500
/// whose details stay in the log, found by the correlation id the response carries.
pub fn store_problem(error: &Failure, call: StoreCall) -> Problem {
    tracing::error!(error = %ErrorChain(error), transient = error.is_transient(), "{}", call.failed);
    if error.is_transient() {
        Problem::new(ProblemKind::ServiceUnavailable, call.busy).with_retry_after(1)
    } else {
        Problem::new(ProblemKind::Internal, call.broken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_correlation_id_wins_when_valid() {
        let mut headers = HeaderMap::new();
        headers.insert(CORRELATION_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(correlation_id(&headers, Some("req-1")).as_str(), "abc-123");
        headers.insert(CORRELATION_HEADER, HeaderValue::from_static("bad value!"));
        assert_eq!(correlation_id(&headers, Some("req-1")).as_str(), "req-1");
        assert!(!correlation_id(&HeaderMap::new(), None).as_str().is_empty());
    }

    #[test]
    fn a_transient_store_failure_is_a_503_to_retry_and_any_other_a_500() {
        let call = StoreCall {
            failed: "reading order failed",
            busy: "busy; retry",
            broken: "could not be read",
        };
        let busy = store_problem(&Failure::Transient("throttled".into()), call);
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.retry_after_seconds(), Some(1));
        let response = problem(&busy);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(response.headers()[CONTENT_TYPE], problem::CONTENT_TYPE);
        let broken = store_problem(&Failure::Permanent("access denied".into()), call);
        assert_eq!(broken.kind(), ProblemKind::Internal);
        assert_eq!(broken.retry_after_seconds(), None);
    }
}
