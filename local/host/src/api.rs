//! API Gateway, emulated: an HTTP server on loopback that routes each request to the
//! function whose `Api` event matches its method and path (with `{params}`), in API
//! Gateway's REST proxy event shape, and turns the function's proxy response back into
//! HTTP. Locally there is no authentication: the host says so when it starts.
//!
//! In front of the routes stands API Gateway's edge ([`crate::edge`]): an unknown
//! route, a missing required header or a body that breaks the API definition's schema
//! is answered as API Gateway answers it, before any function runs.
//!
//! It still says who is calling, as API Gateway does after checking a SigV4 signature
//! (`requestContext.identity.userArn`), because orders belong to their caller: the
//! [`CALLER_HEADER`] names a caller, else the access key of a SigV4 `Authorization`
//! header (unchecked), else every request is [`LOCAL_CALLER`]'s.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::edge::{Edge, Refusal, match_path};
use crate::invoke::Invoke;
use emulator::ACCOUNT_ID;
use emulator::provision::ApiRoute;

/// The largest body API Gateway accepts (10 MB).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// Header naming the caller of a local request (`x-local-caller: alice` calls as
/// `arn:aws:iam::000000000000:user/alice`; an IAM user name, else it is ignored): how a
/// test or a learner tries two callers.
/// AWS never reads it; there, the caller is whoever signed the request.
pub const CALLER_HEADER: &str = "x-local-caller";

/// The user every local request without a caller of its own is made by.
pub const LOCAL_CALLER: &str = "local";

/// Whether `name` can be an IAM user name (1 to 64 of letters, digits and `+=,.@_-`):
/// anything else in [`CALLER_HEADER`] is ignored, as if it were not sent.
fn is_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// The caller's ARN, as API Gateway would report the principal behind the request: the
/// user [`CALLER_HEADER`] names, else the user of a SigV4 signature's access key id,
/// else [`LOCAL_CALLER`].
fn caller_arn(headers: &HeaderMap) -> String {
    let named = headers
        .get(CALLER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|name| is_user_name(name));
    let signed = || {
        let authorization = headers.get("authorization")?.to_str().ok()?;
        let credential = authorization.split("Credential=").nth(1)?;
        credential.split('/').next().filter(|key| is_user_name(key))
    };
    let user = named.or_else(signed).unwrap_or(LOCAL_CALLER);
    format!("arn:aws:iam::{ACCOUNT_ID}:user/{user}")
}

/// A route with its function.
#[derive(Clone)]
pub struct Route {
    /// From the template.
    pub route: ApiRoute,
    /// Who serves it.
    pub function: Arc<dyn Invoke>,
}

/// The routes, and the edge in front of them.
struct Api {
    routes: Vec<Route>,
    /// API Gateway's own checks and answers; `None` sends every request on a route to
    /// its function ([`crate::HostOptions::edge`]).
    edge: Option<Edge>,
}

/// The router for `routes`, behind `edge` if given.
pub fn router(routes: Vec<Route>, edge: Option<Edge>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(Arc::new(Api { routes, edge }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

fn single_and_multi(headers: &HeaderMap) -> (Map<String, Value>, Map<String, Value>) {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        single.insert(name.as_str().to_owned(), Value::String(value.clone()));
        if let Value::Array(values) = multi
            .entry(name.as_str().to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            values.push(Value::String(value));
        }
    }
    (single, multi)
}

fn query(uri: &Uri) -> (Value, Value) {
    let Some(query) = uri.query().filter(|q| !q.is_empty()) else {
        return (Value::Null, Value::Null);
    };
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        single.insert(key.to_owned(), Value::String(value.to_owned()));
        if let Value::Array(values) = multi
            .entry(key.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            values.push(Value::String(value.to_owned()));
        }
    }
    (Value::Object(single), Value::Object(multi))
}

/// The edge's answer as HTTP.
fn refusal_response(refusal: Refusal) -> Response {
    let mut response = Response::new(Body::from(refusal.body));
    *response.status_mut() = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::FORBIDDEN);
    for (name, value) in refusal.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn plain(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

async fn handle(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "Request Too Long");
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let refused = api.edge.as_ref().and_then(|edge| {
        edge.check(
            parts.method.as_str(),
            &path,
            &parts.headers,
            parts.uri.query(),
            &bytes,
            &request_id,
        )
    });
    if let Some(refusal) = refused {
        return refusal_response(refusal);
    }
    let routes = &api.routes;
    let matched = routes.iter().find_map(|r| {
        let method_ok = r.route.method == "ANY" || r.route.method == parts.method.as_str();
        match_path(&r.route.path, &path)
            .filter(|_| method_ok)
            .map(|params| (r, params))
    });
    let Some((route, params)) = matched else {
        let known_path = routes
            .iter()
            .any(|r| match_path(&r.route.path, &path).is_some());
        return if known_path {
            plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        } else {
            plain(StatusCode::NOT_FOUND, "Missing Authentication Token")
        };
    };
    if !route.route.permitted {
        // What API Gateway answers when the function's resource policy does not let it
        // invoke the function ("Invalid permissions on Lambda function" in its logs).
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    }
    let (body, base64) = encode_body(&bytes);
    let (headers, multi_headers) = single_and_multi(&parts.headers);
    let (query, multi_query) = query(&parts.uri);
    let event = json!({
        "resource": route.route.path,
        "path": path,
        "httpMethod": parts.method.as_str(),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": if params.is_empty() { Value::Null } else { json!(params) },
        "stageVariables": null,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "resourceId": "local",
            "stage": "local",
            "requestId": request_id,
            "requestTimeEpoch": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
            "resourcePath": route.route.path,
            "httpMethod": parts.method.as_str(),
            "path": path,
            "protocol": "HTTP/1.1",
            "identity": {
                "userArn": caller_arn(&parts.headers),
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()),
            },
        },
        "body": body,
        "isBase64Encoded": base64,
    });
    match route.function.invoke(event).await {
        Ok(response) => proxy_response(&response, parts.method == Method::HEAD),
        // API Gateway answers a failed integration with a bare 502.
        Err(_) => plain(StatusCode::BAD_GATEWAY, "Internal server error"),
    }
}

fn encode_body(bytes: &Bytes) -> (Value, bool) {
    if bytes.is_empty() {
        return (Value::Null, false);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(base64_encode(bytes)), true),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn proxy_response(response: &Value, head: bool) -> Response {
    let status = response["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok());
    let Some(status) = status else {
        return plain(StatusCode::BAD_GATEWAY, "Internal server error");
    };
    let body = response["body"].as_str().unwrap_or_default().to_owned();
    let mut http = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    *http.status_mut() = status;
    let headers = http.headers_mut();
    let mut add = |name: &str, value: &Value| {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            headers.append(name, value);
        }
    };
    if let Some(single) = response["headers"].as_object() {
        for (name, value) in single {
            add(name, value);
        }
    }
    if let Some(multi) = response["multiValueHeaders"].as_object() {
        for (name, values) in multi {
            for value in values.as_array().into_iter().flatten() {
                add(name, value);
            }
        }
    }
    http
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_named_by_header_else_by_signature_else_local() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            caller_arn(&headers),
            format!("arn:aws:iam::{ACCOUNT_ID}:user/local")
        );
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=00",
            ),
        );
        assert_eq!(
            caller_arn(&headers),
            format!("arn:aws:iam::{ACCOUNT_ID}:user/AKIDEXAMPLE")
        );
        headers.insert(CALLER_HEADER, HeaderValue::from_static("alice"));
        assert_eq!(
            caller_arn(&headers),
            format!("arn:aws:iam::{ACCOUNT_ID}:user/alice")
        );
    }

    #[test]
    fn binary_bodies_are_base64() {
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_encode(&[0xFF]), "/w==");
    }
}
