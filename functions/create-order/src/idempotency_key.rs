//! The `Idempotency-Key` request header.

use domain::problem::{Problem, ProblemKind};
use http::HeaderValue;

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
