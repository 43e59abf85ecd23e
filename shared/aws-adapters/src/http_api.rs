//! Small helpers every HTTP function shares: correlation ids and response building.
//!
//! Built on the `http` crate's types, which `lambda_http` uses too, so a handler turns
//! these into its response with `.map(Body::from)`.

use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use domain::ids::CorrelationId;
use domain::problem::{self, Problem};

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
}
