//! Event filtering as Lambda's `FilterCriteria` does it: the subset of EventBridge
//! patterns Lambda supports for stream and queue records.
//!
//! A record passes when any filter matches. A pattern is an object whose leaves are
//! arrays of allowed values or matchers (`{"prefix": ..}`, `{"suffix": ..}`,
//! `{"exists": bool}`, `{"anything-but": [..]}`, `{"numeric": [op, n, ..]}`); every key of
//! the pattern must match.

use serde_json::Value;

/// Whether `record` passes `filters` (no filters: everything passes).
pub fn passes(filters: &[Value], record: &Value) -> bool {
    filters.is_empty() || filters.iter().any(|pattern| matches(pattern, Some(record)))
}

fn matches(pattern: &Value, value: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, sub)| {
            let field = value.and_then(|v| v.get(key));
            match sub {
                Value::Array(rules) => rules.iter().any(|rule| rule_matches(rule, field)),
                Value::Object(_) => matches(sub, field),
                _ => false,
            }
        }),
        _ => false,
    }
}

fn rule_matches(rule: &Value, value: Option<&Value>) -> bool {
    // A field holding an array matches when any element does.
    if let Some(Value::Array(items)) = value {
        return items.iter().any(|item| rule_matches(rule, Some(item)));
    }
    let text = value.and_then(Value::as_str);
    match rule {
        Value::Object(matcher) => matcher.iter().all(|(op, arg)| match op.as_str() {
            "prefix" => text
                .zip(arg.as_str())
                .is_some_and(|(t, p)| t.starts_with(p)),
            "suffix" => text.zip(arg.as_str()).is_some_and(|(t, s)| t.ends_with(s)),
            "exists" => arg.as_bool() == Some(value.is_some()),
            "anything-but" => {
                value.is_some()
                    && match arg {
                        Value::Array(excluded) => !excluded.iter().any(|e| Some(e) == value),
                        single => Some(single) != value,
                    }
            }
            "numeric" => numeric(arg, value),
            _ => false,
        }),
        Value::Null => value.is_none_or(Value::is_null),
        literal => Some(literal) == value,
    }
}

fn numeric(conditions: &Value, value: Option<&Value>) -> bool {
    let Some(number) = value.and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    }) else {
        return false;
    };
    let Some(parts) = conditions.as_array() else {
        return false;
    };
    parts.chunks(2).all(|pair| match pair {
        [Value::String(op), bound] => bound.as_f64().is_some_and(|b| match op.as_str() {
            "=" => number == b,
            "<" => number < b,
            "<=" => number <= b,
            ">" => number > b,
            ">=" => number >= b,
            _ => false,
        }),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outbox_filter_matches_only_event_rows_on_insert() {
        let filter = json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "EVENT#"}]}}}});
        let record = |name: &str, sk: &str| json!({"eventName": name, "dynamodb": {"NewImage": {"sk": {"S": sk}}}});
        let filters = [filter];
        assert!(passes(&filters, &record("INSERT", "EVENT#1")));
        assert!(!passes(&filters, &record("INSERT", "ORDER")));
        assert!(!passes(&filters, &record("MODIFY", "EVENT#1")));
        assert!(!passes(&filters, &json!({"eventName": "REMOVE"})));
        assert!(passes(&[], &record("REMOVE", "x")));
    }

    #[test]
    fn matchers() {
        let value = json!({"type": "OrderPlaced", "n": 5, "tags": ["a", "b"]});
        assert!(passes(
            &[json!({"type": [{"anything-but": ["X"]}]})],
            &value
        ));
        assert!(passes(
            &[json!({"n": [{"numeric": [">", 1, "<=", 5]}]})],
            &value
        ));
        assert!(passes(&[json!({"tags": ["b"]})], &value));
        assert!(passes(&[json!({"missing": [{"exists": false}]})], &value));
        assert!(!passes(&[json!({"type": [{"suffix": "Failed"}]})], &value));
    }
}
