//! The order domain shared by every function in the pipeline, with no AWS in it.
//!
//! Everything the functions must agree on lives here, once: the ids and money, the order
//! and its one transition table, the event envelope and payloads, input validation, the
//! problem+json error shape, and the idempotency protocol. The [`ports`] say what the
//! domain needs from the outside world (a store, a publisher) as traits, each with an
//! in-memory fake for unit tests; the `aws-adapters` crate implements them with the AWS
//! SDK.

pub mod error_chain;
pub mod events;
pub mod failure;
pub mod fixtures;
pub mod idempotency;
pub mod ids;
pub mod money;
pub mod order;
pub mod ports;
pub mod problem;
pub mod validation;
