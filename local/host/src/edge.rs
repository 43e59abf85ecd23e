//! API Gateway's edge, emulated: what a REST API does to a request before any function
//! runs, read from the REST API's definition as SAM's translation of the template holds
//! it (docs/openapi.yaml, included).
//!
//! On AWS a request whose route the definition lacks never reaches a function: API
//! Gateway answers it with its `MISSING_AUTHENTICATION_TOKEN` response (a 403, whatever
//! the path). A request the definition's request validator refuses (a required header
//! missing, a body that breaks its JSON schema) is answered with `BAD_REQUEST_PARAMETERS`
//! or `BAD_REQUEST_BODY`. Each answer is the definition's gateway response for that type
//! (`x-amazon-apigateway-gateway-responses`: status, headers and body template), or API
//! Gateway's own default when it has none. So a client tried against `make dev` sees
//! the answers it will see on AWS. [`crate::HostOptions::edge`] turns this off, for
//! tests of a function's own validation.
//!
//! What is not emulated: authentication (IAM is not checked locally, see the README's
//! list of differences), throttling, and the body mapping templates' VTL (gateway
//! responses only substitute variables, which is all this does).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// The API definition cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A body schema is not a valid JSON schema.
    #[error("{method} {path}: its request body schema: {message}")]
    Schema {
        /// The operation's method.
        method: String,
        /// The operation's path.
        path: String,
        /// Why.
        message: String,
    },
}

/// One operation's checks.
struct Operation {
    method: String,
    path: String,
    /// Headers and query parameters the request must carry (API Gateway checks that
    /// required parameters are present, not their schemas), with where they go.
    required: Vec<(String, String)>,
    /// The body's schema, when the validator checks bodies and the operation has one.
    body: Option<jsonschema::Validator>,
    /// Whether the body itself is required.
    body_required: bool,
}

/// A gateway response as the definition declares it.
#[derive(Debug, Clone, Default)]
struct GatewayResponse {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    template: Option<String>,
}

/// What the edge answers instead of the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// Headers, the content type among them.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// The edge of one API: its operations' checks and its gateway responses.
pub struct Edge {
    operations: Vec<Operation>,
    responses: HashMap<String, GatewayResponse>,
}

/// Why the edge refuses a request, as API Gateway names it.
enum Refused {
    UnknownRoute,
    Parameters(String),
    Body(String),
}

impl Edge {
    /// The edge an OpenAPI document with API Gateway's extensions describes.
    pub fn from_definition(document: &Value) -> Result<Edge, EdgeError> {
        let validators = document["x-amazon-apigateway-request-validators"].as_object();
        let default_validator = document["x-amazon-apigateway-request-validator"].as_str();
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().into_iter().flatten() {
            for (method, definition) in item.as_object().into_iter().flatten() {
                if method == "parameters" {
                    continue;
                }
                let validator = definition["x-amazon-apigateway-request-validator"]
                    .as_str()
                    .or(default_validator)
                    .and_then(|name| validators?.get(name));
                let checks = |key: &str| {
                    validator
                        .and_then(|v| v.get(key))
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                };
                let parameters = item["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(definition["parameters"].as_array().into_iter().flatten())
                    .map(|p| resolve(document, p));
                let required = if checks("validateRequestParameters") {
                    parameters
                        .filter(|p| p["required"] == true)
                        .filter(|p| p["in"] == "header" || p["in"] == "query")
                        .filter_map(|p| {
                            Some((p["in"].as_str()?.to_owned(), p["name"].as_str()?.to_owned()))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let request_body = resolve(document, &definition["requestBody"]);
                let schema = &request_body["content"]["application/json"]["schema"];
                let body = if checks("validateRequestBody") && !schema.is_null() {
                    // The schema under the whole document, so its `$ref`s resolve; draft 4
                    // (API Gateway's dialect) ignores the document's other keys.
                    let mut root = document.clone();
                    if let Some(map) = root.as_object_mut() {
                        map.insert("allOf".into(), json!([schema]));
                    }
                    Some(
                        jsonschema::draft4::new(&root).map_err(|e| EdgeError::Schema {
                            method: method.to_uppercase(),
                            path: path.clone(),
                            message: e.to_string(),
                        })?,
                    )
                } else {
                    None
                };
                operations.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    required,
                    body,
                    body_required: request_body["required"] == true,
                });
            }
        }
        let responses = document["x-amazon-apigateway-gateway-responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(kind, response)| (kind.clone(), gateway_response(response)))
            .collect();
        Ok(Edge {
            operations,
            responses,
        })
    }

    /// What API Gateway answers instead of the function, if it refuses the request:
    /// `query` is the raw query string, `request_id` the `$context.requestId`.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        headers: &http::HeaderMap,
        query: Option<&str>,
        body: &[u8],
        request_id: &str,
    ) -> Option<Refusal> {
        let refused = match self
            .operations
            .iter()
            .find(|op| op.method == method && match_path(&op.path, path).is_some())
        {
            None => Refused::UnknownRoute,
            Some(operation) => operation.refusal(headers, query, body)?,
        };
        Some(self.answer(&refused, request_id))
    }

    /// The gateway response for `refused`, its template filled in.
    fn answer(&self, refused: &Refused, request_id: &str) -> Refusal {
        let (kind, message, validation) = match refused {
            Refused::UnknownRoute => (
                "MISSING_AUTHENTICATION_TOKEN",
                "Missing Authentication Token",
                "",
            ),
            // API Gateway's message names the missing parameters itself.
            Refused::Parameters(why) => ("BAD_REQUEST_PARAMETERS", why.as_str(), why.as_str()),
            Refused::Body(why) => ("BAD_REQUEST_BODY", "Invalid request body", why.as_str()),
        };
        self.gateway_answer(kind, message, validation, request_id)
    }

    /// What API Gateway answers for a gateway response type (`BAD_REQUEST_BODY`, ...):
    /// the definition's response for it, else its `DEFAULT_4XX`, else API Gateway's own
    /// `{"message": ...}`, with `$context.error.*` and `$context.requestId` filled in.
    /// Public so the contract tests can render every response the definition declares.
    pub fn gateway_answer(
        &self,
        kind: &str,
        message: &str,
        validation: &str,
        request_id: &str,
    ) -> Refusal {
        let response = self
            .responses
            .get(kind)
            .or_else(|| self.responses.get("DEFAULT_4XX"))
            .cloned()
            .unwrap_or_default();
        let quoted = |text: &str| Value::String(text.to_owned()).to_string();
        let body = match &response.template {
            Some(template) => template
                .replace("$context.error.validationErrorString", &quoted(validation))
                .replace("$context.error.messageString", &quoted(message))
                .replace("$context.error.message", message)
                .replace("$context.error.responseType", kind)
                .replace("$context.requestId", request_id),
            None => json!({ "message": message }).to_string(),
        };
        let mut headers = response.headers;
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        headers.push(("x-amzn-ErrorType".into(), error_type(kind).into()));
        headers.push(("x-amzn-RequestId".into(), request_id.into()));
        Refusal {
            status: response.status.unwrap_or_else(|| default_status(kind)),
            headers,
            body,
        }
    }

    /// Every gateway response type the definition customises.
    pub fn gateway_response_types(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.responses.keys().cloned().collect();
        kinds.sort();
        kinds
    }
}

/// API Gateway's status for a response type the definition gives none.
fn default_status(kind: &str) -> u16 {
    match kind {
        "MISSING_AUTHENTICATION_TOKEN" | "ACCESS_DENIED" => 403,
        "THROTTLED" => 429,
        "DEFAULT_5XX" => 500,
        _ => 400,
    }
}

impl Operation {
    /// Why the validator refuses this request, if it does: parameters first, then the
    /// body, as API Gateway reports them.
    fn refusal(
        &self,
        headers: &http::HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Option<Refused> {
        let present_in_query = |name: &str| {
            query.into_iter().flat_map(|q| q.split('&')).any(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                key == name && !value.is_empty()
            })
        };
        let missing: Vec<&str> = self
            .required
            .iter()
            .filter(|(place, name)| match place.as_str() {
                "header" => headers
                    .get(name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .is_none_or(|v| v.trim().is_empty()),
                _ => !present_in_query(name),
            })
            .map(|(_, name)| name.as_str())
            .collect();
        if !missing.is_empty() {
            return Some(Refused::Parameters(format!(
                "Missing required request parameters: [{}]",
                missing.join(", ")
            )));
        }
        let validator = self.body.as_ref()?;
        // API Gateway validates a body sent as JSON, or sent with no content type (which
        // it takes for JSON); another media type goes to the function, which refuses it.
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if !content_type.trim_start().starts_with("application/json") {
            return None;
        }
        if body.is_empty() {
            return self
                .body_required
                .then(|| Refused::Body("[Request body is required]".into()));
        }
        let instance: Value = match serde_json::from_slice(body) {
            Ok(instance) => instance,
            Err(error) => return Some(Refused::Body(format!("[Invalid JSON: {error}]"))),
        };
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{e} (at {at})")
                }
            })
            .collect();
        (!errors.is_empty()).then(|| Refused::Body(format!("[{}]", errors.join(", "))))
    }
}

/// A `$ref` to `#/components/...` replaced by what it names.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => document
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or(&Value::Null),
        None => value,
    }
}

/// A gateway response object: `statusCode`, `responseParameters` (header values are
/// quoted literals, `'application/problem+json'`), `responseTemplates` (JSON's).
fn gateway_response(response: &Value) -> GatewayResponse {
    let status = match &response["statusCode"] {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let headers = response["responseParameters"]
        .as_object()
        .unwrap_or(&Map::new())
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("gatewayresponse.header.")?;
            let value = value.as_str()?.trim_matches('\'');
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    let template = response["responseTemplates"]["application/json"]
        .as_str()
        .map(str::to_owned);
    GatewayResponse {
        status,
        headers,
        template,
    }
}

/// The `x-amzn-ErrorType` API Gateway sends with each of its own answers.
fn error_type(kind: &str) -> &'static str {
    match kind {
        "MISSING_AUTHENTICATION_TOKEN" => "MissingAuthenticationTokenException",
        _ => "BadRequestException",
    }
}

/// Matches `/orders/{id}` against `/orders/42`, returning the path parameters.
pub fn match_path(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let want: Vec<&str> = template.trim_matches('/').split('/').collect();
    let got: Vec<&str> = path.trim_matches('/').split('/').collect();
    if want.len() != got.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (w, g) in want.iter().zip(&got) {
        if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            if g.is_empty() {
                return None;
            }
            params.insert(name.trim_end_matches('+').to_owned(), (*g).to_owned());
        } else if w != g {
            return None;
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_templates_with_parameters() {
        assert_eq!(
            match_path("/orders/{id}", "/orders/42"),
            Some(HashMap::from([("id".to_string(), "42".to_string())]))
        );
        assert_eq!(match_path("/orders", "/orders"), Some(HashMap::new()));
        assert_eq!(match_path("/orders/{id}", "/orders"), None);
        assert_eq!(match_path("/orders/{id}", "/orders/42/items"), None);
    }

    fn definition() -> Value {
        serde_yaml_ng::from_str(
            r##"
x-amazon-apigateway-request-validators:
  all: { validateRequestBody: true, validateRequestParameters: true }
x-amazon-apigateway-request-validator: all
x-amazon-apigateway-gateway-responses:
  BAD_REQUEST_BODY:
    statusCode: 400
    responseParameters:
      gatewayresponse.header.Content-Type: "'application/problem+json'"
    responseTemplates:
      application/json: '{"title":"bad","detail":$context.error.validationErrorString,"id":"$context.requestId"}'
paths:
  /things:
    post:
      parameters:
        - $ref: "#/components/parameters/Key"
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Thing" }
components:
  parameters:
    Key: { name: Idempotency-Key, in: header, required: true, schema: { type: string } }
  schemas:
    Thing:
      type: object
      required: [name]
      properties: { name: { type: string, minLength: 1 } }
"##,
        )
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn an_unknown_route_or_method_is_the_403_of_a_rest_api() {
        let edge = Edge::from_definition(&definition()).unwrap();
        for (method, path) in [("GET", "/nothing"), ("DELETE", "/things")] {
            let refusal = edge
                .check(method, path, &headers(&[]), None, b"", "r-1")
                .unwrap();
            assert_eq!(refusal.status, 403, "{method} {path}");
            assert_eq!(
                refusal.body,
                r#"{"message":"Missing Authentication Token"}"#
            );
        }
    }

    #[test]
    fn a_missing_header_and_a_bad_body_get_their_gateway_responses() {
        let edge = Edge::from_definition(&definition()).unwrap();
        let no_key = edge
            .check(
                "POST",
                "/things",
                &headers(&[]),
                None,
                br#"{"name":"x"}"#,
                "r-2",
            )
            .unwrap();
        assert_eq!(no_key.status, 400);
        assert!(
            no_key.body.contains("Idempotency-Key"),
            "names the parameter: {}",
            no_key.body
        );
        let with_key = headers(&[
            ("idempotency-key", "k"),
            ("content-type", "application/json"),
        ]);
        let bad = edge
            .check("POST", "/things", &with_key, None, br#"{"name":""}"#, "r-3")
            .unwrap();
        assert_eq!(bad.status, 400);
        assert!(
            bad.headers
                .contains(&("Content-Type".into(), "application/problem+json".into()))
        );
        let body: Value = serde_json::from_str(&bad.body).expect("the template renders JSON");
        assert_eq!(body["title"], "bad");
        assert_eq!(body["id"], "r-3");
        assert!(body["detail"].as_str().unwrap().contains("name"), "{body}");
        assert_eq!(
            edge.check(
                "POST",
                "/things",
                &with_key,
                None,
                br#"{"name":"x"}"#,
                "r-4"
            ),
            None,
            "a valid request goes through"
        );
    }
}
