//! An error printed with all its causes, for log lines.
//!
//! In the domain crate rather than beside `aws_adapters::telemetry` because the domain
//! logs errors too (the idempotency protocol, when releasing a claim fails).

use std::error::Error;
use std::fmt;

/// An error with its whole chain of causes, `outer: inner: root`, for log lines: the
/// outer message alone rarely says what went wrong underneath.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorChain;

    #[derive(Debug, thiserror::Error)]
    #[error("order store failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause() {
        let error = Outer(std::io::Error::other("connection reset"));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "order store failed: connection reset"
        );
    }
}
