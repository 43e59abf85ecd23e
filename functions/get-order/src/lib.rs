//! `GET /orders/{id}`: read one order back, for the caller that placed it.
//!
//! An order belongs to the IAM principal that placed it (`http_api::caller`); any other
//! caller gets the same 404 as for an id that names no order.
//!
//! The handler is `App::respond`; the HTTP shell around it (correlation id, span,
//! problem+json) is `aws_adapters::runtime::HttpFunction`, so the tests (`src/tests.rs`)
//! call it against the in-memory fake.

pub mod wiring;

use aws_adapters::http_api::{self, StoreCall};
use aws_adapters::runtime::HttpFunction;
use aws_adapters::telemetry::ErrorChain;
use domain::ids::{CorrelationId, OrderId};
use domain::ports::OrderStore;
use domain::problem::{Problem, ProblemKind};
use lambda_http::{Request, RequestExt};

/// How a failed read is told: a plain retry is safe, reading changes nothing.
const READ: StoreCall = StoreCall {
    failed: "reading order failed",
    busy: "the order store is busy; retry",
    broken: "the order could not be read; the error is logged with this correlation id",
};

/// The function's dependencies, built once per cold start in `main`.
pub struct App<O> {
    orders: O,
}

impl<O: OrderStore> App<O> {
    /// Wires the handler to the order store.
    pub fn new(orders: O) -> Self {
        Self { orders }
    }
}

impl<O: OrderStore> HttpFunction for App<O> {
    /// `order_id` is filled in once the id parses, so every later line names the order.
    fn span(correlation_id: &CorrelationId) -> tracing::Span {
        tracing::info_span!("get_order", correlation_id = %correlation_id, order_id = tracing::field::Empty)
    }

    /// The stored order, or 404 for an id that names none of the caller's orders.
    async fn respond(
        &self,
        request: &Request,
        _: &CorrelationId,
    ) -> Result<http::Response<String>, Problem> {
        let caller = http_api::caller(request)?;
        let id = order_id_of(request);
        let not_found = || Problem::new(ProblemKind::NotFound, format!("no order with id {id:?}"));
        // A malformed id cannot name an order: same answer as an unknown one.
        let order_id = OrderId::parse(&id).ok_or_else(not_found)?;
        tracing::Span::current().record("order_id", tracing::field::display(order_id));
        let stored = self
            .orders
            .get_stored(order_id)
            .await
            .map_err(|error| http_api::store_problem(&error, READ))?
            .ok_or_else(not_found)?;
        // Another caller's order is answered as no order at all: a 403 would confirm that
        // the id exists. An order stored before orders had owners is nobody's.
        if stored.owner.as_ref() != Some(&caller) {
            tracing::info!("the order belongs to another caller: answered as not found");
            return Err(not_found());
        }
        let body = serde_json::to_string(&stored.order).map_err(|error| {
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

#[cfg(test)]
mod tests;
