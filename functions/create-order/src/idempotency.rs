//! The API's side of idempotency: the `Idempotency-Key` request header (the IETF
//! draft), and the response stored with a key and replayed for its repeats. The rules
//! for judging a key are the domain's (`domain::idempotency`); the record is written in
//! the same transaction as the order (`DynamoDbOrderStore::place`).

use aws_adapters::http_api;
use domain::order::Order;
use domain::problem::{Problem, ProblemKind};
use http::HeaderValue;
use http::header::LOCATION;
use serde::{Deserialize, Serialize};

/// The header name (HTTP header names are case-insensitive; `http` stores them lowercase).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// Parses the header value. The draft defines it as a Structured Field string
/// (`"8e03978e-..."`); many clients send it bare, so both forms are accepted. A key is 1
/// to 255 visible ASCII characters without quotes or backslashes; a UUID is recommended.
pub fn parse_idempotency_key(value: &HeaderValue) -> Result<String, Problem> {
    let malformed = |why: &str| {
        Problem::new(
            ProblemKind::InvalidIdempotencyKey,
            format!("Idempotency-Key is malformed: {why}"),
        )
    };
    let text = value
        .to_str()
        .map_err(|_| malformed("it must be visible ASCII"))?
        .trim();
    let key = match text.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .ok_or_else(|| malformed("unbalanced quotes"))?,
        None => text,
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(malformed("it must be 1 to 255 characters long"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(malformed(
            "it may only contain visible ASCII characters other than quotes and backslashes",
        ));
    }
    Ok(key.to_owned())
}

/// Header marking a response as a replay of an earlier one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Status, body and location of the first answer to a key, kept so that every repeat
/// gets the very same answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    status: u16,
    body: String,
    location: Option<String>,
}

impl StoredResponse {
    /// The 201 for a newly placed order.
    pub fn created(order: &Order) -> Result<Self, serde_json::Error> {
        Ok(Self {
            status: 201,
            body: serde_json::to_string(order)?,
            location: Some(format!("/orders/{}", order.order_id)),
        })
    }

    /// Serialised for the idempotency record.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Read back from the idempotency record.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The HTTP response; `replayed` adds `Idempotent-Replayed: true`.
    pub fn into_response(self, replayed: bool) -> http::Response<String> {
        let mut response = http_api::json(self.status, self.body);
        let headers = response.headers_mut();
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(LOCATION, location);
        }
        if replayed {
            headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<String, Problem> {
        parse_idempotency_key(&HeaderValue::from_str(text).unwrap())
    }

    #[test]
    fn accepts_structured_field_strings_and_bare_tokens() {
        assert_eq!(parse("\"abc-123\"").unwrap(), "abc-123");
        assert_eq!(parse("abc-123").unwrap(), "abc-123");
    }

    #[test]
    fn rejects_malformed_keys() {
        for bad in ["", "\"\"", "\"abc", "has space", &"k".repeat(256)] {
            let problem = parse(bad).unwrap_err();
            assert_eq!(problem.status(), 400, "{bad:?}");
        }
        let non_ascii = HeaderValue::from_bytes("clé".as_bytes()).unwrap();
        assert!(parse_idempotency_key(&non_ascii).is_err());
    }
}
