//! The response stored with an idempotency key, and replayed for repeats.

use aws_adapters::http_api;
use domain::order::Order;
use http::header::{HeaderValue, LOCATION};
use serde::{Deserialize, Serialize};

/// Header marking a response as a replay of an earlier one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Status, body and location of the first answer to a key, kept so that every repeat
/// gets the very same answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    status: u16,
    body: String,
    location: Option<String>,
}

impl StoredResponse {
    /// The 201 for a newly placed order.
    pub fn created(order: &Order) -> Result<Self, serde_json::Error> {
        Ok(Self {
            status: 201,
            body: serde_json::to_string(order)?,
            location: Some(format!("/orders/{}", order.order_id)),
        })
    }

    /// Serialised for the idempotency record.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Read back from the idempotency record.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The HTTP response; `replayed` adds `Idempotent-Replayed: true`.
    pub fn into_response(self, replayed: bool) -> http::Response<String> {
        let mut response = http_api::json(self.status, self.body);
        let headers = response.headers_mut();
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(LOCATION, location);
        }
        if replayed {
            headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}
