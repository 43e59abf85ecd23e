//! The API contract, `docs/openapi.yaml`, as a test oracle.
//!
//! Every answer a test gets from the API through [`crate::Harness`] is checked here: its
//! status must be one the document lists for the operation, and its body must match the
//! schema documented for that status and media type. So the document cannot drift from
//! what the functions do without a test failing.
//!
//! Schemas are checked as JSON Schema draft 4, the dialect API Gateway validates request
//! bodies with.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The parsed OpenAPI document.
pub struct Contract {
    document: Value,
}

/// One operation of the document: its method, path template and definition.
pub struct Operation<'a> {
    /// Upper-case HTTP method.
    pub method: String,
    /// The path template, e.g. `/orders/{id}`.
    pub path: &'a str,
    /// The OpenAPI operation object.
    pub definition: &'a Value,
}

impl Contract {
    /// Where the document lives.
    pub fn path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml")
    }

    /// The document, parsed once per test process.
    pub fn get() -> &'static Contract {
        static CONTRACT: OnceLock<Contract> = OnceLock::new();
        CONTRACT.get_or_init(|| {
            let text = std::fs::read_to_string(Self::path()).expect("docs/openapi.yaml reads");
            let document: Value =
                serde_yaml_ng::from_str(&text).expect("docs/openapi.yaml is YAML");
            Contract { document }
        })
    }

    /// The raw document.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Every operation in the document.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        let mut operations = Vec::new();
        for (path, item) in self.document["paths"].as_object().into_iter().flatten() {
            for (method, definition) in item.as_object().into_iter().flatten() {
                operations.push(Operation {
                    method: method.to_uppercase(),
                    path,
                    definition,
                });
            }
        }
        operations
    }

    /// The operation that serves a concrete request path, if the document has one.
    pub fn operation(&self, method: &str, path: &str) -> Option<Operation<'_>> {
        self.operations()
            .into_iter()
            .find(|op| op.method.eq_ignore_ascii_case(method) && template_matches(op.path, path))
    }

    /// A draft-4 validator for a schema of the document, e.g. `#/components/schemas/Order`.
    pub fn validator(&self, pointer: &str) -> jsonschema::Validator {
        // A `$ref` at the root of the whole document resolves against the document itself;
        // in draft 4 its sibling keys (`openapi`, `paths`, ...) are ignored.
        let mut root = self.document.clone();
        root["$ref"] = json!(pointer);
        jsonschema::draft4::new(&root)
            .unwrap_or_else(|e| panic!("{pointer} is not a valid schema: {e}"))
    }

    /// The errors `instance` has against the schema at `pointer` (empty when it matches).
    pub fn violations(&self, pointer: &str, instance: &Value) -> Vec<String> {
        self.validator(pointer)
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Panics unless the answer is one the document promises for this request.
    pub fn check_answer(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) {
        // A route the document lacks never reaches a function on AWS (API Gateway answers
        // it); tests may still call a handler that way, and there is nothing to compare.
        let Some(operation) = self.operation(method, path) else {
            return;
        };
        let context = format!("{method} {path} -> {status}");
        let mut response = &operation.definition["responses"][status.to_string()];
        assert!(
            !response.is_null(),
            "{context}: status {status} is not documented in docs/openapi.yaml: {body}"
        );
        if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
            response = self.resolve(reference);
        }
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            assert!(
                body.is_empty(),
                "{context}: body documented as empty: {body}"
            );
            return;
        };
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        let schema = &content.get(media_type).unwrap_or_else(|| {
            panic!("{context}: media type {media_type:?} is not documented: {body}")
        })["schema"];
        let pointer = schema["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: schema is a $ref"));
        let instance: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{context}: body is not JSON ({e}): {body}"));
        let violations = self.violations(pointer, &instance);
        assert!(
            violations.is_empty(),
            "{context}: body does not match {pointer}: {violations:?}\n{body}"
        );
    }

    /// The value a local `#/...` reference points at.
    pub fn resolve(&self, reference: &str) -> &Value {
        let pointer = reference.trim_start_matches('#');
        self.document
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{reference} resolves in docs/openapi.yaml"))
    }
}

/// Whether a concrete path fits a template whose `{name}` segments match any segment.
fn template_matches(template: &str, path: &str) -> bool {
    let template: Vec<_> = template.trim_matches('/').split('/').collect();
    let path: Vec<_> = path.trim_matches('/').split('/').collect();
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn path_templates_match_one_segment_per_parameter() {
        assert!(template_matches("/orders/{id}", "/orders/abc"));
        assert!(template_matches("/orders", "/orders"));
        assert!(!template_matches("/orders/{id}", "/orders"));
        assert!(!template_matches("/orders/{id}", "/orders/a/b"));
        assert!(!template_matches("/orders", "/payments"));
    }
}
