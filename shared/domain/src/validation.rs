//! Parsing and validating a create-order request, reporting every problem at once.
//!
//! Two stages, two kinds of error: first the body must be a well-formed document of the
//! right shape (types, no unknown fields), then the document must satisfy the business
//! rules, checked with `validator` so *every* failing field is reported, not only the
//! first. Only a request that passes both becomes a [`NewOrder`] of domain types.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError, ValidationErrors, ValidationErrorsKind};

use crate::ids::{CustomerId, Sku, is_customer_id, is_sku};
use crate::money::{Currency, Money};
use crate::order::{NewOrder, OrderItem, PaymentToken, Quantity};
use crate::problem::FieldViolation;

/// Most lines one order may have.
pub const MAX_LINES: u64 = 25;
/// Highest unit price accepted, in minor units (10 000.00).
pub const MAX_UNIT_PRICE_MINOR: u64 = 1_000_000;
/// Highest order total accepted, in minor units (50 000.00).
pub const MAX_TOTAL_MINOR: u64 = 5_000_000;

/// The body of `POST /orders`, exactly as the OpenAPI document describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// `cust-` and 4 to 32 lowercase letters or digits.
    #[validate(custom(function = "customer_id_format"))]
    pub customer_id: String,
    /// ISO 4217 code from the allow-list.
    #[validate(custom(function = "currency_allowed"))]
    pub currency: String,
    /// 1 to 25 lines, each SKU at most once. The rules across lines (count, unique
    /// SKUs, total) are checked in [`CreateOrderRequest::line_rules`]: validator keeps
    /// only one kind of error per field, and they must not hide the per-line errors.
    #[validate(nested)]
    pub items: Vec<OrderLineRequest>,
    /// The card token from the payment provider's client SDK.
    #[validate(length(min = 1, max = 128))]
    pub payment_token: String,
}

/// One line of a create-order request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    /// 3 to 32 characters of `A-Z`, `0-9`, `-`.
    #[validate(custom(function = "sku_format"))]
    pub sku: String,
    /// 1 to 100 units.
    #[validate(range(min = 1, max = 100))]
    pub quantity: u32,
    /// Price of one unit in minor units, 1 to 1 000 000.
    #[validate(range(min = 1, max = 1_000_000))]
    pub unit_price_minor: u64,
}

fn rule(code: &'static str, message: String) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Owned(message))
}

fn customer_id_format(value: &str) -> Result<(), ValidationError> {
    if is_customer_id(value) {
        Ok(())
    } else {
        Err(rule(
            "customer_id_format",
            "must be `cust-` followed by 4 to 32 lowercase letters or digits".into(),
        ))
    }
}

fn currency_allowed(value: &str) -> Result<(), ValidationError> {
    if Currency::parse(value).is_some() {
        Ok(())
    } else {
        let allowed: Vec<_> = Currency::ALL.iter().map(|c| c.code()).collect();
        Err(rule(
            "currency_allowed",
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

fn sku_format(value: &str) -> Result<(), ValidationError> {
    if is_sku(value) {
        Ok(())
    } else {
        Err(rule(
            "sku_format",
            "must be 3 to 32 characters of A-Z, 0-9 and -".into(),
        ))
    }
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// Not a well-formed document of the right shape.
    #[error("{}: {}", .0.field, .0.message)]
    Malformed(FieldViolation),
    /// Well-formed, but breaks business rules; every violation is listed.
    #[error("{} rule(s) broken", .0.len())]
    Invalid(Vec<FieldViolation>),
}

impl CreateOrderRequest {
    /// Parses JSON text into a request; the error names the path of the bad field.
    pub fn from_json(body: &str) -> Result<Self, RequestError> {
        let mut deserializer = serde_json::Deserializer::from_str(body);
        let request = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            malformed(if path == "." { String::new() } else { path }, e.inner())
        })?;
        // Trailing content after the document is malformed too.
        deserializer
            .end()
            .map_err(|e| malformed(String::new(), &e))?;
        Ok(request)
    }

    /// Checks every business rule and converts to domain types.
    pub fn into_new_order(self) -> Result<NewOrder, RequestError> {
        let mut violations = match self.validate() {
            Ok(()) => Vec::new(),
            Err(errors) => flatten(&errors),
        };
        violations.extend(self.line_rules());
        if !violations.is_empty() {
            violations.sort_by(|a, b| (&a.field, &a.rule).cmp(&(&b.field, &b.rule)));
            return Err(RequestError::Invalid(violations));
        }
        self.to_domain().ok_or_else(|| {
            // Unreachable if validation is right; still an honest error, not a panic.
            RequestError::Invalid(vec![FieldViolation {
                field: String::new(),
                rule: "domain".into(),
                message: "request passed validation but is not a valid order".into(),
            }])
        })
    }

    /// The rules that span lines: how many, no SKU twice, and the total's limit.
    fn line_rules(&self) -> Vec<FieldViolation> {
        let mut violations = Vec::new();
        let mut broken = |rule: &str, message: String| {
            violations.push(FieldViolation {
                field: "items".into(),
                rule: rule.into(),
                message,
            })
        };
        let count = self.items.len() as u64;
        if !(1..=MAX_LINES).contains(&count) {
            broken(
                "length",
                format!("must have 1 to {MAX_LINES} lines, has {count}"),
            );
        }
        let mut seen = HashSet::new();
        let repeated: Vec<&str> = self
            .items
            .iter()
            .filter(|line| !seen.insert(line.sku.as_str()))
            .map(|line| line.sku.as_str())
            .collect();
        if !repeated.is_empty() {
            broken(
                "unique_skus",
                format!(
                    "each SKU may appear once; repeated: {}",
                    repeated.join(", ")
                ),
            );
        }
        // Saturating: anything that large is over the limit anyway.
        let total = self.items.iter().fold(0u64, |sum, line| {
            sum.saturating_add(
                line.unit_price_minor
                    .saturating_mul(u64::from(line.quantity)),
            )
        });
        if total > MAX_TOTAL_MINOR {
            broken(
                "total_limit",
                format!("order total {total} exceeds the limit of {MAX_TOTAL_MINOR} minor units"),
            );
        }
        violations
    }

    fn to_domain(&self) -> Option<NewOrder> {
        let currency = Currency::parse(&self.currency)?;
        let items = self
            .items
            .iter()
            .map(|line| {
                Some(OrderItem {
                    sku: Sku::parse(&line.sku)?,
                    quantity: Quantity::new(line.quantity)?,
                    unit_price: Money::new(line.unit_price_minor, currency),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let order = NewOrder {
            customer_id: CustomerId::parse(&self.customer_id)?,
            currency,
            items,
            payment_token: PaymentToken::new(self.payment_token.clone()),
        };
        order.total().map(|_| order)
    }
}

fn malformed(field: String, error: &serde_json::Error) -> RequestError {
    use serde_json::error::Category;
    let rule = match error.classify() {
        Category::Syntax | Category::Eof => "json_syntax",
        Category::Data | Category::Io => "schema",
    };
    RequestError::Malformed(FieldViolation {
        field,
        rule: rule.into(),
        message: error.to_string(),
    })
}

/// Turns validator's nested error tree into a flat, path-named list.
fn flatten(errors: &ValidationErrors) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    collect(errors, "", &mut out);
    out
}

fn collect(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldViolation>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => out.extend(list.iter().map(|e| FieldViolation {
                field: path.clone(),
                rule: e.code.to_string(),
                message: describe(e),
            })),
            ValidationErrorsKind::Struct(inner) => collect(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    collect(inner, &format!("{path}[{index}]"), out);
                }
            }
        }
    }
}

/// A human message for validator's built-in rules, which carry parameters, not text.
fn describe(error: &ValidationError) -> String {
    if let Some(message) = &error.message {
        return message.to_string();
    }
    let param = |name: &str| error.params.get(name).map(|v| v.to_string());
    match error.code.as_ref() {
        "range" => format!(
            "must be between {} and {}",
            param("min").unwrap_or_default(),
            param("max").unwrap_or_default()
        ),
        "length" => format!(
            "length must be between {} and {}",
            param("min").unwrap_or_default(),
            param("max").unwrap_or_default()
        ),
        other => format!("breaks rule {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_json() -> serde_json::Value {
        serde_json::json!({
            "customer_id": "cust-1234",
            "currency": "EUR",
            "items": [
                {"sku": "SKU-MUG", "quantity": 2, "unit_price_minor": 1250},
                {"sku": "SKU-TEE", "quantity": 1, "unit_price_minor": 1999}
            ],
            "payment_token": "tok_visa"
        })
    }

    fn parse(value: &serde_json::Value) -> Result<NewOrder, RequestError> {
        CreateOrderRequest::from_json(&value.to_string())?.into_new_order()
    }

    fn fields(err: RequestError) -> Vec<(String, String)> {
        match err {
            RequestError::Invalid(list) => list.into_iter().map(|v| (v.field, v.rule)).collect(),
            RequestError::Malformed(v) => vec![(v.field, v.rule)],
        }
    }

    #[test]
    fn a_valid_request_becomes_an_order_with_its_total() {
        let order = parse(&valid_json()).unwrap();
        assert_eq!(order.total(), Some(Money::new(4499, Currency::EUR)));
    }

    #[test]
    fn every_broken_rule_is_reported_at_once() {
        let mut body = valid_json();
        body["customer_id"] = "bob".into();
        body["currency"] = "JPY".into();
        body["items"][0]["quantity"] = 0.into();
        body["items"][1]["sku"] = "SKU-MUG".into();
        body["items"][1]["unit_price_minor"] = 2_000_000.into();
        let got = fields(parse(&body).unwrap_err());
        let want = [
            ("currency", "currency_allowed"),
            ("customer_id", "customer_id_format"),
            ("items", "unique_skus"),
            ("items[0].quantity", "range"),
            ("items[1].unit_price_minor", "range"),
        ];
        for (field, rule) in want {
            assert!(
                got.contains(&(field.to_string(), rule.to_string())),
                "{field}/{rule} missing from {got:?}"
            );
        }
    }

    #[test]
    fn line_count_and_total_are_limited() {
        let mut body = valid_json();
        body["items"] = serde_json::json!([]);
        assert_eq!(
            fields(parse(&body).unwrap_err()),
            [("items".to_string(), "length".to_string())]
        );
        let lines: Vec<_> = (0..26)
            .map(|i| serde_json::json!({"sku": format!("SKU-{i:03}"), "quantity": 1, "unit_price_minor": 1}))
            .collect();
        body["items"] = lines.into();
        assert!(fields(parse(&body).unwrap_err()).contains(&("items".into(), "length".into())));
        body["items"] = serde_json::json!([{"sku": "SKU-GOLD", "quantity": 100, "unit_price_minor": 1_000_000}]);
        assert_eq!(
            fields(parse(&body).unwrap_err()),
            [("items".to_string(), "total_limit".to_string())]
        );
    }

    #[test]
    fn malformed_documents_name_the_bad_field() {
        let mut body = valid_json();
        body["items"][1]["quantity"] = "two".into();
        assert_eq!(
            fields(parse(&body).unwrap_err()),
            [("items[1].quantity".to_string(), "schema".to_string())]
        );
        let mut body = valid_json();
        body["coupon"] = "FREE".into();
        let err = parse(&body).unwrap_err();
        assert!(err.to_string().contains("unknown field `coupon`"), "{err}");
        assert_eq!(
            fields(parse_text("{\"customer_id\": ")),
            [("customer_id".to_string(), "json_syntax".to_string())]
        );
        assert_eq!(fields(parse_text("{} {}")).len(), 1);
    }

    fn parse_text(text: &str) -> RequestError {
        CreateOrderRequest::from_json(text).unwrap_err()
    }
}
