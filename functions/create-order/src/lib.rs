//! `POST /orders`: validate an order, store it exactly once, and answer.
//!
//! The handler is `App::respond`, a plain async function of a request: the HTTP shell
//! around it (correlation id, span, problem+json) is `aws_adapters::runtime::HttpFunction`,
//! so tests call it directly, against the in-memory fakes (`src/tests.rs`) or with real
//! SDK clients pointed at the emulator; `main.rs` only wires it to the Lambda runtime.
//!
//! What makes it safe to retry:
//! - the client's `Idempotency-Key` (IETF draft "The Idempotency-Key HTTP Header Field")
//!   maps each logical request to one stored response. Keys are the caller's own
//!   (`create-order#<caller>#<key>`): two callers choosing the same key place two
//!   orders, and neither can replay the other's answer;
//! - the order, its `OrderPlaced` outbox row and the completed idempotency record are
//!   written in **one** DynamoDB transaction, so there is never an order without its
//!   event, a key without its order, or a 201 for something not stored.
//!
//! The order belongs to its caller, the IAM principal API Gateway authenticated
//! (`http_api::caller`): it is stored as the order item's owner, and only that caller
//! can read the order back (get-order).
//!
//! The card token goes with the order, onto its item, and nowhere else: not into the
//! event, the answer or the stored answer a replay sends (both are the [`Order`], which
//! has no token field). Payment reads it from the item.

mod idempotency;
pub mod wiring;

use aws_adapters::http_api::{self, StoreCall};
use aws_adapters::runtime::HttpFunction;
use chrono::Utc;
use domain::events::{Envelope, Event, OrderPlaced};
use domain::idempotency::fingerprint;
use domain::idempotency::{IdempotencyRecord, Seen, judge};
use domain::ids::{Caller, CorrelationId, OrderId};
use domain::order::Order;
use domain::ports::{OrderStore, PlaceOutcome, StoredOrder};
use domain::problem::{Problem, ProblemKind};
use domain::validation::{CreateOrderRequest, RequestError};
use lambda_http::Request;

use idempotency::StoredResponse;
pub use idempotency::{IDEMPOTENCY_HEADER, parse_idempotency_key};

/// Largest request body accepted. Orders are small; anything bigger is a mistake or an
/// attack, and is refused before it is parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Prefix of this function's keys in the shared idempotency table. Its role may touch
/// no other key there (`dynamodb:LeadingKeys` in template.yaml, checked against this
/// constant by tests/integration/least_privilege.rs).
const KEY_SCOPE: &str = "create-order";

/// The idempotency record's key for a client's `Idempotency-Key`:
/// `create-order#<caller>#<key>`. The key is the caller's own: another caller's same key
/// is another request (the IETF Idempotency-Key draft scopes keys per client), never its
/// replay. A caller has no `#`, so two callers' keys never meet.
pub fn record_key(caller: &Caller, key: &str) -> String {
    format!("{KEY_SCOPE}#{caller}#{key}")
}

/// How a failed order or idempotency store is told: a retry must reuse the key, or it
/// could place a second order.
const STORE: StoreCall = StoreCall {
    failed: "order store failed",
    busy: "the order store is busy; retry with the same Idempotency-Key",
    broken: "the order could not be stored; the error is logged with this correlation id",
};

/// The function's dependencies, built once per cold start in `main`.
pub struct App<O> {
    orders: O,
}

impl<O: OrderStore> HttpFunction for App<O> {
    fn span(correlation_id: &CorrelationId) -> tracing::Span {
        tracing::info_span!("create_order", correlation_id = %correlation_id)
    }

    /// Validates the order, then stores it with its event and its idempotency record,
    /// or answers as the first request with the same key was answered.
    async fn respond(
        &self,
        request: &Request,
        correlation_id: &CorrelationId,
    ) -> Result<http::Response<String>, Problem> {
        let caller = http_api::caller(request)?;
        let body = checked_body(request)?;
        let key = request
            .headers()
            .get(IDEMPOTENCY_HEADER)
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::InvalidIdempotencyKey,
                    "POST /orders requires an Idempotency-Key header (e.g. a UUID) so that a retry never places a second order",
                )
            })
            .and_then(parse_idempotency_key)?;
        let order_request = CreateOrderRequest::from_json(body).map_err(request_problem)?;
        // Hash the parsed request, re-serialised: the same order sent with different
        // whitespace or key order is still the same request.
        let payload_hash = fingerprint(&serde_json::to_vec(&order_request).map_err(internal)?);
        let new_order = order_request.into_new_order().map_err(request_problem)?;
        let record_key = record_key(&caller, &key);

        // No read first: the transaction's conditional put of the key refuses a key seen
        // before and hands back its record (ALL_OLD), so the happy path is one request.
        let now = Utc::now();
        let order = Order::place(&new_order, OrderId::new(), correlation_id.clone(), now)
            .ok_or_else(|| internal("order total overflowed after validation"))?;
        let event = Envelope::new(
            order.order_id,
            correlation_id.clone(),
            now,
            Event::OrderPlaced(OrderPlaced::of(&order)),
        );
        let created = StoredResponse::created(&order).map_err(internal)?;
        let record = IdempotencyRecord::completed(
            record_key.clone(),
            payload_hash.clone(),
            created.to_json().map_err(internal)?,
            now.timestamp(),
        );
        let stored = StoredOrder {
            order,
            owner: Some(caller),
            payment_token: Some(new_order.payment_token),
        };
        let order = &stored.order;
        match self
            .orders
            .place(&stored, &event, &record)
            .await
            .map_err(|error| http_api::store_problem(&error, STORE))?
        {
            PlaceOutcome::Placed => {
                tracing::info!(
                    order_id = %order.order_id,
                    event_id = %event.id,
                    total_minor = order.total.amount_minor,
                    currency = %order.total.currency,
                    "order placed"
                );
                aws_adapters::metrics::count(aws_adapters::metrics::ORDERS_PLACED);
                Ok(created.into_response(false))
            }
            // The key was used before: replay, refuse, or ask the client to wait.
            PlaceOutcome::KeyTaken(existing) => {
                earlier_response(existing.as_ref(), &payload_hash, now.timestamp())
            }
        }
    }
}

impl<O: OrderStore> App<O> {
    /// Wires the handler to its store.
    pub fn new(orders: O) -> Self {
        Self { orders }
    }
}

/// The response owed to a request whose key is taken, judged from the record that holds
/// it. A record the judge calls free (our clock ahead of DynamoDB's), or none yet (a
/// concurrent request is writing it), asks the client to retry.
fn earlier_response(
    existing: Option<&IdempotencyRecord>,
    payload_hash: &str,
    now: i64,
) -> Result<http::Response<String>, Problem> {
    let in_progress = |retry_after_seconds| {
        Problem::new(
            ProblemKind::RequestInProgress,
            "a request with this Idempotency-Key is being processed; retry shortly",
        )
        .with_retry_after(retry_after_seconds)
    };
    match judge(existing, payload_hash, now) {
        Seen::New(()) => Err(in_progress(1)),
        Seen::AlreadyDone(stored) => {
            tracing::info!("idempotent replay");
            aws_adapters::metrics::count(aws_adapters::metrics::IDEMPOTENT_REPLAYS);
            let stored = StoredResponse::from_json(&stored).map_err(internal)?;
            Ok(stored.into_response(true))
        }
        Seen::Busy {
            retry_after_seconds,
        } => Err(in_progress(retry_after_seconds)),
        Seen::Mismatch => Err(Problem::new(
            ProblemKind::IdempotencyKeyReused,
            "this Idempotency-Key was already used with a different request body; use a new key for a new order",
        )),
    }
}

/// The body as UTF-8 text, if it has the right media type and size.
fn checked_body(request: &Request) -> Result<&str, Problem> {
    let media_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            format!("Content-Type must be application/json, got {media_type:?}"),
        ));
    }
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Problem::new(
            ProblemKind::PayloadTooLarge,
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                bytes.len()
            ),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        Problem::new(
            ProblemKind::MalformedRequest,
            format!("the body is not valid UTF-8 ({e})"),
        )
    })
}

fn request_problem(error: RequestError) -> Problem {
    match error {
        RequestError::Malformed(violation) => Problem::new(
            ProblemKind::MalformedRequest,
            format!(
                "the body is not a valid order document: {}",
                violation.message
            ),
        )
        .with_errors(vec![violation]),
        RequestError::Invalid(violations) => Problem::new(
            ProblemKind::ValidationFailed,
            format!("{} rule(s) broken; see `errors`", violations.len()),
        )
        .with_errors(violations),
    }
}

fn internal(error: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %error, "unexpected failure");
    Problem::new(
        ProblemKind::Internal,
        "unexpected failure; the error is logged with this correlation id",
    )
}

#[cfg(test)]
mod tests;
