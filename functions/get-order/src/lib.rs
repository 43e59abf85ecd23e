//! `GET /orders/{id}`: read one order back.

pub mod wiring;

use aws_adapters::http_api;
use aws_adapters::runtime::HttpFunction;
use aws_adapters::telemetry::ErrorChain;
use domain::ids::OrderId;
use domain::ports::OrderStore;
use domain::problem::{Problem, ProblemKind};
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

/// The function's dependencies, built once per cold start in `main`.
pub struct App<O> {
    orders: O,
}

impl<O: OrderStore> HttpFunction for App<O> {
    /// Handles one request. Never fails: every error becomes a problem+json response.
    async fn handle(&self, request: Request) -> Response<Body> {
        let request_id = request.lambda_context_ref().map(|c| c.request_id.clone());
        let correlation_id = http_api::correlation_id(request.headers(), request_id.as_deref());
        let span = tracing::info_span!("get_order", correlation_id = %correlation_id);
        let id = order_id_of(&request);
        let response = match self.read(&id).instrument(span).await {
            Ok(response) => response,
            Err(problem) => {
                http_api::problem(&problem.with_correlation_id(correlation_id.as_str()))
            }
        };
        http_api::with_correlation_id(response, &correlation_id).map(Body::from)
    }
}

impl<O: OrderStore> App<O> {
    /// Wires the handler to the order store.
    pub fn new(orders: O) -> Self {
        Self { orders }
    }

    async fn read(&self, id: &str) -> Result<http::Response<String>, Problem> {
        let not_found = || Problem::new(ProblemKind::NotFound, format!("no order with id {id:?}"));
        // A malformed id cannot name an order: same answer as an unknown one.
        let order_id = OrderId::parse(id).ok_or_else(not_found)?;
        let order = self.orders.get(order_id).await.map_err(|error| {
            tracing::error!(error = %ErrorChain(&error), order_id = %order_id, "reading order failed");
            if error.is_transient() {
                Problem::new(
                    ProblemKind::ServiceUnavailable,
                    "the order store is busy; retry",
                )
                .with_retry_after(1)
            } else {
                Problem::new(
                    ProblemKind::Internal,
                    "the order could not be read; the error is logged with this correlation id",
                )
            }
        })?;
        let order = order.ok_or_else(not_found)?;
        let body = serde_json::to_string(&order).map_err(|error| {
            tracing::error!(error = %ErrorChain(&error), "encoding order failed");
            Problem::new(ProblemKind::Internal, "the order could not be encoded")
        })?;
        Ok(http_api::json(200, body))
    }
}

/// The `{id}` path parameter; API Gateway supplies it, and a bare path (as some local
/// tools send) falls back to the last segment.
fn order_id_of(request: &Request) -> String {
    request
        .path_parameters_ref()
        .and_then(|params| params.first("id"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            request
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
}
