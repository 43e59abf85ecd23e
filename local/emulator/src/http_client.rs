//! A small HTTP/1 client: plain HTTP for the local API on loopback, and HTTPS (the
//! system's roots, through rustls) for `make smoke` against a deployed stack.

use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

/// A response, read fully.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text (lossy).
    pub body: String,
}

/// Sends one request on a connection of its own.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<Response, String> {
    Http::new().send(method, url, headers, body).await
}

/// A client that keeps its connections open between requests, for callers that send
/// many (the reliability runs' load), as real API clients do. Plain HTTP unless built
/// with [`Http::https`].
#[derive(Clone)]
pub struct Http<C = HttpConnector> {
    client: Client<C, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// A client with an empty connection pool.
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl Http<HttpsConnector<HttpConnector>> {
    /// A client for `https://` (and `http://`) URLs, trusting the system's certificate
    /// roots: the API Gateway endpoint of a deployed stack, or the local API.
    pub fn https() -> Result<Self, String> {
        let connector = HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("the system's certificate roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> Http<C> {
    /// Sends one request, reusing an idle connection if there is one.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Response, String> {
        let client = &self.client;
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}
