//! API errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Clients branch on the stable `type` URI, humans read `detail`, and validation errors
//! list every failing field with the rule it broke, so one round trip shows everything
//! that must be fixed.

use serde::Serialize;

/// The media type of every error response.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Prefix of every problem `type`; the slug after it is stable API contract.
pub const TYPE_BASE: &str = "https://order-pipeline.example/problems/";

/// The kinds of problem the API reports. Each has one status and one stable `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The body is not a well-formed order (bad JSON, wrong types, unknown fields).
    MalformedRequest,
    /// The body is a well-formed order that breaks a business rule.
    ValidationFailed,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body is larger than the API accepts.
    PayloadTooLarge,
    /// `Idempotency-Key` is missing or not a valid key.
    InvalidIdempotencyKey,
    /// The key was already used with a different request body.
    IdempotencyKeyReused,
    /// A request with the same key is still being processed.
    RequestInProgress,
    /// No such resource.
    NotFound,
    /// The method is not supported on this path.
    MethodNotAllowed,
    /// A dependency is throttling or unavailable; the client may retry.
    ServiceUnavailable,
    /// A bug or an unexpected failure; details are in the logs, not in the response.
    Internal,
}

impl ProblemKind {
    /// The HTTP status for this kind.
    pub fn status(self) -> u16 {
        match self {
            ProblemKind::MalformedRequest
            | ProblemKind::ValidationFailed
            | ProblemKind::InvalidIdempotencyKey => 400,
            ProblemKind::NotFound => 404,
            ProblemKind::MethodNotAllowed => 405,
            ProblemKind::RequestInProgress => 409,
            ProblemKind::PayloadTooLarge => 413,
            ProblemKind::UnsupportedMediaType => 415,
            ProblemKind::IdempotencyKeyReused => 422,
            ProblemKind::Internal => 500,
            ProblemKind::ServiceUnavailable => 503,
        }
    }

    /// The stable slug of the `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::MalformedRequest => "malformed-request",
            ProblemKind::ValidationFailed => "validation-failed",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::InvalidIdempotencyKey => "invalid-idempotency-key",
            ProblemKind::IdempotencyKeyReused => "idempotency-key-reused",
            ProblemKind::RequestInProgress => "request-in-progress",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::ServiceUnavailable => "service-unavailable",
            ProblemKind::Internal => "internal-error",
        }
    }

    /// A short summary that is the same for every occurrence of the kind.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::MalformedRequest => "The request body is not a valid order document",
            ProblemKind::ValidationFailed => "The order breaks one or more rules",
            ProblemKind::UnsupportedMediaType => "Unsupported media type",
            ProblemKind::PayloadTooLarge => "Request body too large",
            ProblemKind::InvalidIdempotencyKey => "Missing or invalid Idempotency-Key",
            ProblemKind::IdempotencyKeyReused => {
                "Idempotency-Key already used for a different request"
            }
            ProblemKind::RequestInProgress => "A request with this Idempotency-Key is in progress",
            ProblemKind::NotFound => "Not found",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::ServiceUnavailable => "Service temporarily unavailable",
            ProblemKind::Internal => "Internal error",
        }
    }
}

/// One rule broken by one field, e.g. `items[2].quantity` broke `range`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldViolation {
    /// JSON path of the field, e.g. `items[0].quantity`; empty for the document itself.
    pub field: String,
    /// Machine-readable rule name, e.g. `range`, `length`, `unique_skus`.
    pub rule: String,
    /// What the rule requires, for humans.
    pub message: String,
}

/// An RFC 9457 problem details document. It keeps only its kind and the
/// request-specific parts; `type`, `title` and `status` follow from the kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    kind: ProblemKind,
    detail: String,
    errors: Vec<FieldViolation>,
    correlation_id: Option<String>,
    retry_after_seconds: Option<u32>,
}

/// The JSON shape of a [`Problem`].
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    /// Extension: every violated rule, for validation problems.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldViolation],
    /// Extension: the correlation id to quote when asking for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
}

impl Problem {
    /// A problem of a kind, with a request-specific detail.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            correlation_id: None,
            retry_after_seconds: None,
        }
    }

    /// Adds the list of violated rules.
    pub fn with_errors(mut self, errors: Vec<FieldViolation>) -> Self {
        self.errors = errors;
        self
    }

    /// Asks the client to retry after some seconds (sent as `Retry-After`).
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// Tags the problem with the request's correlation id.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// The kind this problem was built from.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// Seconds the client should wait before retrying, if it should.
    pub fn retry_after_seconds(&self) -> Option<u32> {
        self.retry_after_seconds
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        let wire = Wire {
            type_uri: format!("{TYPE_BASE}{}", self.kind.slug()),
            title: self.kind.title(),
            status: self.kind.status(),
            detail: &self.detail,
            errors: &self.errors,
            correlation_id: self.correlation_id.as_deref(),
        };
        // Serialising strings and numbers cannot fail; the fallback keeps this total.
        serde_json::to_string(&wire).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"{TYPE_BASE}internal-error","title":"Internal error","status":500}}"#
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_serialise_as_rfc9457() {
        let problem =
            Problem::new(ProblemKind::ValidationFailed, "2 rules broken").with_errors(vec![
                FieldViolation {
                    field: "items[0].quantity".into(),
                    rule: "range".into(),
                    message: "must be 1..=100".into(),
                },
            ]);
        let json: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
        assert_eq!(
            json["type"],
            "https://order-pipeline.example/problems/validation-failed"
        );
        assert_eq!(json["status"], 400);
        assert_eq!(json["errors"][0]["field"], "items[0].quantity");
        assert!(json.get("retry_after_seconds").is_none());
    }
}
