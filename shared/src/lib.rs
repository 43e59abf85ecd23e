//! The order domain shared by every function in the pipeline.
//!
//! Everything a function needs to agree on with the others lives here, once: the domain
//! types and the allowed status transitions, the event envelope and event payloads, input
//! validation, the problem+json error shape, and the idempotency protocol. AWS appears
//! only at the edges: the [`ports`] are traits, and [`adapters`] implement them with the
//! DynamoDB and SNS SDK clients built by [`aws`].

#[cfg(feature = "aws")]
pub mod adapters;
#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
#[cfg(feature = "aws")]
pub mod consumer;
pub mod error_chain;
pub mod events;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod hashing;
pub mod http_api;
pub mod idempotency;
pub mod ids;
pub mod metrics;
pub mod money;
pub mod order;
pub mod ports;
pub mod problem;
#[cfg(feature = "aws")]
pub mod runtime;
#[cfg(feature = "aws")]
pub mod telemetry;
pub mod validation;
