//! Identifier newtypes.
//!
//! A bare `String` lets an order id be passed where a customer id is expected; a newtype
//! makes the compiler catch that, and gives each id one place that knows its format.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies an order for its whole life. A UUID so any function can mint one without
/// coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A fresh, random order id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses the textual form used in URLs (`/orders/{id}`); `None` when it is not a UUID.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::try_parse(text).ok().map(Self)
    }

    /// The underlying UUID, for deriving other stable ids from this order.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifies one event. Consumers deduplicate on it, so it must be stable across
/// retries: it is minted once, stored with the event in the outbox, and never regenerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// A fresh, random event id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// An id derived deterministically from a cause and a name, so that handling the same
    /// cause twice produces the same event id and downstream deduplication still works.
    pub fn derived(cause: Uuid, name: &str) -> Self {
        Self(Uuid::new_v5(&cause, name.as_bytes()))
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Generates the boilerplate of a validated string newtype: construction goes through
/// `parse`, so an instance always holds a well-formed value.
macro_rules! validated_string_id {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts the value only if it has the documented format.
            pub fn parse(text: &str) -> Option<Self> {
                let check: fn(&str) -> bool = $check;
                check(text).then(|| Self(text.to_owned()))
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
                    .ok_or_else(|| format!("invalid {}: {value:?}", stringify!($name)))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_string_id!(
    /// A customer, as issued by the (out of scope) customer service:
    /// `cust-` followed by 4 to 32 lowercase letters or digits, e.g. `cust-7f3a9c`.
    CustomerId,
    is_customer_id
);

validated_string_id!(
    /// A stock-keeping unit: 3 to 32 characters of `A-Z`, `0-9` and `-`, e.g. `SKU-RED-MUG`.
    Sku,
    is_sku
);

validated_string_id!(
    /// Ties together every log line and event caused by one client request, across all
    /// functions: 1 to 64 characters of letters, digits, `-`, `_`, `.` or `:`.
    CorrelationId,
    is_correlation_id
);

validated_string_id!(
    /// Who called the API: the IAM principal API Gateway authenticated (its
    /// `requestContext.identity.userArn`), e.g.
    /// `arn:aws:sts::123456789012:assumed-role/OrderService/checkout`. An order belongs to
    /// the caller that placed it, and an Idempotency-Key is the caller's own. 1 to 2048
    /// printable characters, without `#`, the separator of the keys it is part of.
    Caller,
    is_caller
);

/// The caller rule: what an IAM ARN can hold, and never the keys' `#` separator.
pub fn is_caller(text: &str) -> bool {
    (1..=2048).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

/// The customer id rule, shared by the type and by request validation.
pub fn is_customer_id(text: &str) -> bool {
    text.strip_prefix("cust-").is_some_and(|rest| {
        (4..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// The SKU rule, shared by the type and by request validation.
pub fn is_sku(text: &str) -> bool {
    (3..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// The correlation id rule: safe to echo in a header and to put in a log line.
pub fn is_correlation_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl CorrelationId {
    /// A correlation id for a request that did not bring one.
    pub fn generate() -> Self {
        Self(Uuid::new_v4().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_need_the_prefix_and_a_lowercase_body() {
        assert!(CustomerId::parse("cust-abc123").is_some());
        assert!(CustomerId::parse("cust-ABC123").is_none());
        assert!(CustomerId::parse("cust-abc").is_none());
        assert!(CustomerId::parse("abc12345").is_none());
    }

    #[test]
    fn a_caller_is_a_printable_arn_without_the_key_separator() {
        assert!(Caller::parse("arn:aws:sts::123456789012:assumed-role/Svc/checkout").is_some());
        assert!(Caller::parse("").is_none());
        assert!(Caller::parse("arn:aws:iam::1:user/a#b").is_none());
        assert!(Caller::parse("arn:aws:iam::1:user/a b").is_none());
    }

    #[test]
    fn skus_are_uppercase_with_dashes() {
        assert!(Sku::parse("SKU-RED-MUG").is_some());
        assert!(Sku::parse("sku-red").is_none());
        assert!(Sku::parse("AB").is_none());
    }

    #[test]
    fn derived_event_ids_are_stable() {
        let cause = Uuid::new_v4();
        assert_eq!(
            EventId::derived(cause, "PaymentSucceeded"),
            EventId::derived(cause, "PaymentSucceeded")
        );
        assert_ne!(
            EventId::derived(cause, "PaymentSucceeded"),
            EventId::derived(cause, "PaymentFailed")
        );
    }

    #[test]
    fn ids_reject_bad_json() {
        assert!(serde_json::from_str::<Sku>("\"bad sku\"").is_err());
        let sku: Sku = serde_json::from_str("\"SKU-1\"").unwrap();
        assert_eq!(sku.as_str(), "SKU-1");
    }
}
