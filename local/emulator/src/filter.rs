//! Event filtering as Lambda's `FilterCriteria` does it, for stream and queue records.
//!
//! A pattern is parsed once, when the stack is provisioned ([`Filter::parse`]), so an
//! operator this host does not know stops provisioning with its name: never a filter
//! that silently matches nothing, which would drop every record locally while AWS
//! delivers them. The operators are the ones Lambda's event filtering documents
//! ("Filter rule syntax"):
//!
//! | rule | pattern | matches |
//! |------|---------|---------|
//! | equals | `"type": ["OrderPlaced", 5, true]` | any of the values |
//! | null, empty | `"x": [null]`, `"x": [""]` | a null (or missing) field; an empty string |
//! | equals (ignore case) | `{"equals-ignore-case": "placed"}` | a string, in any case |
//! | begins with, ends with | `{"prefix": "EVENT#"}`, `{"suffix": ".png"}` | a string |
//! | not | `{"anything-but": ["X", "Y"]}`, or `{"anything-but": {"prefix": "us-"}}` | a present value that is none of them |
//! | numeric | `{"numeric": [">", 0, "<=", 5]}` | a number (or numeric string) in range |
//! | exists | `{"exists": true}` / `false` | a field that is there / is not |
//! | and | several keys in one object | every key |
//! | or | several values in one list; `"$or": [{..}, {..}]` | any of them |
//!
//! A field holding a list matches when any element does.

use serde_json::{Map, Value};

/// A `FilterCriteria` pattern this host cannot apply, named so the template can be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FilterCriteria pattern {pattern}: {problem}")]
pub struct FilterError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A parsed pattern: records pass when every field rule holds, or any `$or` branch does.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Pattern);

#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    /// Every key must match.
    Fields(Vec<(String, Node)>),
    /// `$or` branches besides the fields: one of them must match too.
    Any(Vec<(String, Node)>, Vec<Pattern>),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A leaf: any of the rules.
    Rules(Vec<Rule>),
    /// A nested object pattern.
    Nested(Pattern),
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Equals(Value),
    Null,
    /// The expected text, lower-cased.
    EqualsIgnoreCase(String),
    Prefix(String),
    Suffix(String),
    Exists(bool),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    Numeric(Vec<(Comparison, f64)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Filter {
    /// Parses one pattern, as written in a template (an object, or its JSON text).
    pub fn parse(pattern: &Value) -> Result<Filter, FilterError> {
        let parsed = match pattern {
            Value::String(text) => serde_json::from_str(text).map_err(|e| FilterError {
                pattern: text.clone(),
                problem: format!("not JSON: {e}"),
            })?,
            other => other.clone(),
        };
        let fail = |problem: String| FilterError {
            pattern: parsed.to_string(),
            problem,
        };
        pattern_of(&parsed).map(Filter).map_err(fail)
    }

    /// Whether `record` matches.
    pub fn matches(&self, record: &Value) -> bool {
        self.0.matches(Some(record))
    }
}

/// Whether `record` passes `filters` (no filters: everything passes; else any one).
pub fn passes(filters: &[Filter], record: &Value) -> bool {
    filters.is_empty() || filters.iter().any(|filter| filter.matches(record))
}

fn pattern_of(value: &Value) -> Result<Pattern, String> {
    let Value::Object(object) = value else {
        return Err(format!("a pattern is an object, not {value}"));
    };
    let mut fields = Vec::new();
    let mut branches = None;
    for (key, sub) in object {
        if key == "$or" {
            let Value::Array(options) = sub else {
                return Err("`$or` takes a list of patterns".into());
            };
            if options.len() < 2 {
                return Err("`$or` takes at least two patterns".into());
            }
            branches = Some(options.iter().map(pattern_of).collect::<Result<_, _>>()?);
            continue;
        }
        let node = match sub {
            Value::Array(rules) => {
                if rules.is_empty() {
                    return Err(format!("`{key}` has an empty list of rules"));
                }
                Node::Rules(rules.iter().map(rule_of).collect::<Result<_, _>>()?)
            }
            Value::Object(_) => Node::Nested(pattern_of(sub)?),
            other => {
                return Err(format!(
                    "`{key}` must hold a list of rules or an object, not {other}"
                ));
            }
        };
        fields.push((key.clone(), node));
    }
    Ok(match branches {
        Some(branches) => Pattern::Any(fields, branches),
        None => Pattern::Fields(fields),
    })
}

fn rule_of(rule: &Value) -> Result<Rule, String> {
    let matcher = match rule {
        Value::Null => return Ok(Rule::Null),
        Value::Object(matcher) => matcher,
        Value::Array(_) => return Err(format!("a rule cannot be a list: {rule}")),
        literal => return Ok(Rule::Equals(literal.clone())),
    };
    let [(operator, argument)] = matcher.iter().collect::<Vec<_>>()[..] else {
        return Err(format!("a rule has one operator: {rule}"));
    };
    let text = |name: &str| {
        argument
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("`{name}` takes a string, not {argument}"))
    };
    Ok(match operator.as_str() {
        // Lower-cased once here, not for every record matched.
        "equals-ignore-case" => Rule::EqualsIgnoreCase(text("equals-ignore-case")?.to_lowercase()),
        "prefix" => Rule::Prefix(text("prefix")?),
        "suffix" => Rule::Suffix(text("suffix")?),
        "exists" => Rule::Exists(
            argument
                .as_bool()
                .ok_or_else(|| format!("`exists` takes true or false, not {argument}"))?,
        ),
        "anything-but" => anything_but(argument)?,
        "numeric" => Rule::Numeric(numeric_of(argument)?),
        unknown => {
            return Err(format!(
                "the operator `{unknown}` is not one this host supports (see local/emulator/src/filter.rs \
                 for the list Lambda documents); the filter would match nothing here"
            ));
        }
    })
}

fn anything_but(argument: &Value) -> Result<Rule, String> {
    Ok(match argument {
        Value::Array(values) => {
            if let Some(bad) = values.iter().find(|v| v.is_object() || v.is_array()) {
                return Err(format!("`anything-but` lists values, not {bad}"));
            }
            Rule::AnythingBut(values.clone())
        }
        Value::Object(inner) => match inner.iter().collect::<Vec<_>>()[..] {
            [(op, Value::String(text))] if op == "prefix" => Rule::AnythingButPrefix(text.clone()),
            [(op, Value::String(text))] if op == "suffix" => Rule::AnythingButSuffix(text.clone()),
            _ => {
                return Err(format!(
                    "`anything-but` takes a value, a list, or {{\"prefix\"|\"suffix\": text}}, not {argument}"
                ));
            }
        },
        single => Rule::AnythingBut(vec![single.clone()]),
    })
}

fn numeric_of(argument: &Value) -> Result<Vec<(Comparison, f64)>, String> {
    let parts = argument
        .as_array()
        .filter(|parts| !parts.is_empty() && parts.len() % 2 == 0 && parts.len() <= 4)
        .ok_or_else(|| {
            format!("`numeric` takes one or two [operator, number] pairs, not {argument}")
        })?;
    parts
        .chunks(2)
        .map(|pair| {
            let comparison = match pair[0].as_str() {
                Some("=") => Comparison::Equal,
                Some("<") => Comparison::Less,
                Some("<=") => Comparison::LessOrEqual,
                Some(">") => Comparison::Greater,
                Some(">=") => Comparison::GreaterOrEqual,
                _ => return Err(format!("`numeric` has no operator {}", pair[0])),
            };
            let bound = pair[1]
                .as_f64()
                .ok_or_else(|| format!("`numeric` compares with numbers, not {}", pair[1]))?;
            Ok((comparison, bound))
        })
        .collect()
}

impl Pattern {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Pattern::Fields(fields) => fields_match(fields, value),
            Pattern::Any(fields, branches) => {
                fields_match(fields, value) && branches.iter().any(|b| b.matches(value))
            }
        }
    }
}

fn fields_match(fields: &[(String, Node)], value: Option<&Value>) -> bool {
    let object: Option<&Map<String, Value>> = value.and_then(Value::as_object);
    fields.iter().all(|(key, node)| {
        let field = object.and_then(|o| o.get(key));
        match node {
            Node::Rules(rules) => rules.iter().any(|rule| rule.matches(field)),
            Node::Nested(pattern) => pattern.matches(field),
        }
    })
}

impl Rule {
    fn matches(&self, value: Option<&Value>) -> bool {
        // A field holding a list matches when any element does; `exists` asks of the
        // field itself.
        if let (Some(Value::Array(items)), false) = (value, matches!(self, Rule::Exists(_))) {
            return items.iter().any(|item| self.matches(Some(item)));
        }
        let text = value.and_then(Value::as_str);
        match self {
            Rule::Equals(expected) => value == Some(expected),
            Rule::Null => value.is_none_or(Value::is_null),
            Rule::EqualsIgnoreCase(lowered) => text.is_some_and(|t| t.to_lowercase() == *lowered),
            Rule::Prefix(prefix) => text.is_some_and(|t| t.starts_with(prefix.as_str())),
            Rule::Suffix(suffix) => text.is_some_and(|t| t.ends_with(suffix.as_str())),
            Rule::Exists(wanted) => *wanted == value.is_some(),
            Rule::AnythingBut(excluded) => {
                value.is_some_and(|v| !v.is_null() && !excluded.contains(v))
            }
            Rule::AnythingButPrefix(prefix) => {
                text.is_some_and(|t| !t.starts_with(prefix.as_str()))
            }
            Rule::AnythingButSuffix(suffix) => text.is_some_and(|t| !t.ends_with(suffix.as_str())),
            Rule::Numeric(conditions) => number(value).is_some_and(|n| {
                conditions
                    .iter()
                    .all(|(comparison, bound)| match comparison {
                        Comparison::Equal => n == *bound,
                        Comparison::Less => n < *bound,
                        Comparison::LessOrEqual => n <= *bound,
                        Comparison::Greater => n > *bound,
                        Comparison::GreaterOrEqual => n >= *bound,
                    })
            }),
        }
    }
}

/// A number, or a string holding one (DynamoDB stream images carry numbers as `{"N": "5"}`).
fn number(value: Option<&Value>) -> Option<f64> {
    let value = value?;
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(pattern: Value) -> Vec<Filter> {
        vec![Filter::parse(&pattern).unwrap()]
    }

    #[test]
    fn outbox_filter_matches_only_event_rows_on_insert() {
        let filters = filter(
            json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "EVENT#"}]}}}}),
        );
        let record = |name: &str, sk: &str| json!({"eventName": name, "dynamodb": {"NewImage": {"sk": {"S": sk}}}});
        assert!(passes(&filters, &record("INSERT", "EVENT#1")));
        assert!(!passes(&filters, &record("INSERT", "ORDER")));
        assert!(!passes(&filters, &record("MODIFY", "EVENT#1")));
        assert!(!passes(&filters, &json!({"eventName": "REMOVE"})));
        assert!(passes(&[], &record("REMOVE", "x")));
    }

    /// Each rule of Lambda's "Filter rule syntax" table, on the examples it gives.
    #[test]
    fn every_documented_rule_matches_as_lambda_says() {
        let record = json!({
            "type": "OrderPlaced", "n": 5, "tags": ["a", "b"], "empty": "", "nothing": null,
            "Region": "us-east-1", "file": "cat.png", "total": {"N": "44.99"}
        });
        let cases = [
            (json!({"type": ["OrderPlaced"]}), true),
            (json!({"type": ["X", "OrderPlaced"]}), true),
            (json!({"nothing": [null]}), true),
            (json!({"missing": [null]}), true),
            (json!({"type": [null]}), false),
            (json!({"empty": [""]}), true),
            (
                json!({"type": [{"equals-ignore-case": "orderplaced"}]}),
                true,
            ),
            (json!({"type": [{"prefix": "Order"}]}), true),
            (json!({"type": [{"suffix": "Failed"}]}), false),
            (json!({"file": [{"suffix": ".png"}]}), true),
            (json!({"type": [{"anything-but": ["X"]}]}), true),
            (json!({"type": [{"anything-but": "OrderPlaced"}]}), false),
            (json!({"missing": [{"anything-but": ["X"]}]}), false),
            (
                json!({"Region": [{"anything-but": {"prefix": "us-"}}]}),
                false,
            ),
            (
                json!({"file": [{"anything-but": {"suffix": ".jpg"}}]}),
                true,
            ),
            (json!({"n": [{"numeric": ["=", 5]}]}), true),
            (json!({"n": [{"numeric": [">", 1, "<=", 5]}]}), true),
            (json!({"n": [{"numeric": [">", 5]}]}), false),
            (json!({"total": {"N": [{"numeric": [">", 40]}]}}), true),
            (json!({"type": [{"exists": true}]}), true),
            (json!({"missing": [{"exists": false}]}), true),
            (json!({"tags": ["b"]}), true),
            (json!({"tags": [{"exists": true}]}), true),
            (json!({"type": ["OrderPlaced"], "n": [6]}), false),
            (json!({"$or": [{"type": ["X"]}, {"n": [5]}]}), true),
            (json!({"$or": [{"type": ["X"]}, {"n": [6]}]}), false),
            (
                json!({"file": ["cat.png"], "$or": [{"type": ["X"]}, {"n": [5]}]}),
                true,
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(
                passes(&filter(pattern.clone()), &record),
                expected,
                "{pattern}"
            );
        }
    }

    /// An operator this host does not know, or a malformed one, is an error that names
    /// it: never a filter that quietly matches nothing.
    #[test]
    fn an_unknown_or_malformed_operator_is_an_error_naming_it() {
        for (pattern, named) in [
            (json!({"path": [{"wildcard": "*/lib/*"}]}), "`wildcard`"),
            (json!({"ip": [{"cidr": "10.0.0.0/24"}]}), "`cidr`"),
            (json!({"n": [{"numeric": ["~", 5]}]}), "\"~\""),
            (json!({"n": [{"exists": "yes"}]}), "`exists`"),
            (json!({"$or": [{"a": ["x"]}]}), "`$or`"),
            (json!({"a": []}), "`a`"),
            (json!({"a": "x"}), "`a`"),
        ] {
            let error = Filter::parse(&pattern).unwrap_err();
            assert!(error.to_string().contains(named), "{pattern}: {error}");
        }
        let text = Filter::parse(&json!("{\"a\": [1]")).unwrap_err();
        assert!(text.problem.starts_with("not JSON"), "{text}");
        assert!(
            Filter::parse(&json!("{\"a\": [1]}")).is_ok(),
            "a pattern may be JSON text"
        );
    }
}
