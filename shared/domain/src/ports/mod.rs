//! The ports: what the domain needs from the outside world, as traits, each in its own
//! module beside its in-memory fake.
//!
//! Handlers depend on these traits, not on SDK clients, so their logic is unit-tested
//! against the fakes in milliseconds, while the integration tests run the DynamoDB, SNS
//! and SQS adapters of the `aws-adapters` crate against the emulator. The idempotency
//! store is a port too; it lives with the protocol built on it, in
//! [`crate::idempotency`].
//!
//! | port | what it is for | fake |
//! |---|---|---|
//! | [`OrderStore`] | orders (with the card token while PENDING), their status changes and their outbox events | [`InMemoryOrderStore`] |
//! | [`EventPublisher`] | the order-events topic (the relay) | [`RecordingPublisher`] |
//! | [`DeadLetterSink`] | a queue's dead-letter queue | [`InMemoryDeadLetters`] |
//! | [`PaymentGateway`] | the payment provider (payment) | [`InMemoryPaymentGateway`] |
//! | [`StockStore`] | stock levels and reservations, with the order's move to CONFIRMED (inventory) | [`InMemoryStockStore`] |

mod dead_letters;
mod orders;
mod payments;
mod publisher;
mod stock;

pub use dead_letters::{DeadLetter, DeadLetterSink, InMemoryDeadLetters};
pub use orders::{
    InMemoryOrderStore, OrderStore, PlaceOutcome, StoredOrder, Transition, TransitionOutcome,
};
pub use payments::{Charge, ChargeOutcome, InMemoryPaymentGateway, PaymentGateway, Refund};
pub use publisher::{EventPublisher, Outgoing, PUBLISH_BATCH_LIMIT, Published, RecordingPublisher};
pub use stock::{InMemoryStockStore, Reservation, ReserveOutcome, StockStore};
