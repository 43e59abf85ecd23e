//! A sample order and its events, for unit tests and local tools.
//!
//! Every function's tests need the same things: a placed order, the `OrderPlaced` event
//! that announced it, and the events that follow it through the saga. They are spelled
//! once here, so that a change to an event's shape is one edit and the tests of every
//! function talk about the same order. This module is compiled into the crate rather
//! than behind `cfg(test)`, because a crate's `cfg(test)` items are invisible to the
//! tests of the crates that depend on it; it is small, and no live path calls it.

use chrono::Utc;

use crate::events::{
    Envelope, Event, InventoryFailed, InventoryReserved, OrderCancelled, OrderConfirmed,
    OrderPlaced, PaymentFailed, PaymentRefunded, PaymentSucceeded, ReservedLine,
};
use crate::failure::Failure;
use crate::idempotency::IdempotencyRecord;
use crate::ids::{Caller, CorrelationId, CustomerId, OrderId};
use crate::order::{Order, PaymentToken};
use crate::ports::{OrderStore, PlaceOutcome, StoredOrder};
use crate::validation::CreateOrderRequest;

/// The sample order's customer.
pub const CUSTOMER: &str = "cust-4711";

/// A card token every payment gateway of the pipeline approves.
pub const APPROVED_TOKEN: &str = "tok_visa";

/// The card token the payment gateways (the simulated provider and the in-memory fake)
/// always decline.
pub const DECLINED_TOKEN: &str = "tok_decline";

/// The caller that places the sample orders.
pub const OWNER: &str = "arn:aws:iam::000000000000:user/fixture";

/// [`OWNER`] as a [`Caller`].
pub fn owner() -> Caller {
    Caller::parse(OWNER).expect("the fixture's caller is valid")
}

/// The sample order's lines as (SKU, units, unit price in minor units), the same as the
/// sample events in `events/`: 2 × 12.50 + 1 × 19.99 = 44.99 EUR.
pub const LINES: [(&str, u32, u64); 2] = [("SKU-MUG", 2, 1250), ("SKU-TEE", 1, 1999)];

/// A placed order, its card token and the `OrderPlaced` event that announced it, built
/// as create-order builds them; the other methods give the events that follow it in the
/// saga, each caused by the event before it, as the functions would raise them.
#[derive(Debug, Clone)]
pub struct SampleOrder {
    /// The order as stored: PENDING, with its total computed from [`LINES`].
    pub order: Order,
    /// The card token stored with it (never in an event).
    pub payment_token: PaymentToken,
    /// Its `OrderPlaced` envelope.
    pub placed: Envelope,
}

impl SampleOrder {
    /// A fresh order (new order and correlation ids) of [`LINES`] for [`CUSTOMER`], placed
    /// now, to be paid with `payment_token`.
    pub fn placed(payment_token: &str) -> Self {
        // Through the API's own parsing and validation, so the sample is a valid order
        // whatever fields an order grows.
        let lines: Vec<String> = LINES
            .iter()
            .map(|(sku, units, price)| {
                format!(r#"{{"sku":"{sku}","quantity":{units},"unit_price_minor":{price}}}"#)
            })
            .collect();
        let body = format!(
            r#"{{"customer_id":"{CUSTOMER}","currency":"EUR","items":[{}],"payment_token":"{payment_token}"}}"#,
            lines.join(",")
        );
        let new = CreateOrderRequest::from_json(&body)
            .and_then(CreateOrderRequest::into_new_order)
            .expect("the sample order is valid");
        let now = Utc::now();
        let order = Order::place(&new, OrderId::new(), CorrelationId::generate(), now)
            .expect("the sample total does not overflow");
        let placed = Envelope::new(
            order.order_id,
            order.correlation_id.clone(),
            now,
            Event::OrderPlaced(OrderPlaced::of(&order)),
        );
        Self {
            order,
            payment_token: new.payment_token,
            placed,
        }
    }

    /// The order as its store keeps it: with its owner ([`OWNER`]) and card token.
    pub fn stored(&self) -> StoredOrder {
        StoredOrder {
            order: self.order.clone(),
            owner: Some(owner()),
            payment_token: Some(self.payment_token.clone()),
        }
    }

    /// Stores the order with its owner ([`OWNER`]), its card token and its `OrderPlaced`
    /// outbox event, as create-order does, so a consumer under test finds it PENDING. The
    /// idempotency record is keyed by the order id, so storing one sample twice answers
    /// [`PlaceOutcome::KeyTaken`].
    pub async fn store_in(&self, store: &impl OrderStore) -> Result<PlaceOutcome, Failure> {
        let record = IdempotencyRecord::completed(
            format!("create-order#fixture-{}", self.order.order_id),
            "fixture".into(),
            "{}".into(),
            self.order.created_at.timestamp(),
        );
        store.place(&self.stored(), &self.placed, &record).await
    }

    /// Payment charged the order as `charge_id`.
    pub fn payment_succeeded(&self, charge_id: &str) -> Envelope {
        self.placed
            .caused_by(Event::PaymentSucceeded(PaymentSucceeded {
                customer_id: customer(),
                charge_id: charge_id.to_owned(),
                amount: self.order.total,
                items: self.order.items.clone(),
            }))
    }

    /// Payment's provider declined the card.
    pub fn payment_failed(&self, reason: &str) -> Envelope {
        self.placed.caused_by(Event::PaymentFailed(PaymentFailed {
            customer_id: customer(),
            reason: reason.to_owned(),
        }))
    }

    /// Inventory reserved every line of the order charged as `charge_id`.
    pub fn inventory_reserved(&self, charge_id: &str) -> Envelope {
        let lines = self.order.items.iter().map(ReservedLine::of).collect();
        self.payment_succeeded(charge_id)
            .caused_by(Event::InventoryReserved(InventoryReserved {
                customer_id: customer(),
                lines,
            }))
    }

    /// Inventory found the first line short, so the order's charge `charge_id` (of the
    /// whole total) must be refunded.
    pub fn inventory_failed(&self, charge_id: &str) -> Envelope {
        self.payment_succeeded(charge_id)
            .caused_by(Event::InventoryFailed(InventoryFailed {
                customer_id: customer(),
                short_skus: vec![self.order.items[0].sku.clone()],
                charge_id: charge_id.to_owned(),
                amount: self.order.total,
            }))
    }

    /// Payment refunded the charge `charge_id` as `refund_id`.
    pub fn payment_refunded(&self, charge_id: &str, refund_id: &str) -> Envelope {
        self.inventory_failed(charge_id)
            .caused_by(Event::PaymentRefunded(PaymentRefunded {
                customer_id: customer(),
                charge_id: charge_id.to_owned(),
                refund_id: refund_id.to_owned(),
                amount: self.order.total,
            }))
    }

    /// The order reached CONFIRMED.
    pub fn order_confirmed(&self) -> Envelope {
        self.inventory_reserved("ch_sample")
            .caused_by(Event::OrderConfirmed(OrderConfirmed {
                customer_id: customer(),
                total: self.order.total,
            }))
    }

    /// The order reached CANCELLED.
    pub fn order_cancelled(&self, reason: &str) -> Envelope {
        self.inventory_failed("ch_sample")
            .caused_by(Event::OrderCancelled(OrderCancelled {
                customer_id: customer(),
                reason: reason.to_owned(),
            }))
    }

    /// One envelope of every event type, in the order the saga raises them (the happy
    /// path, then the unhappy ones): for tests that must cover every type.
    pub fn every_event(&self) -> Vec<Envelope> {
        vec![
            self.placed.clone(),
            self.payment_succeeded("ch_sample"),
            self.inventory_reserved("ch_sample"),
            self.order_confirmed(),
            self.payment_failed("card declined"),
            self.inventory_failed("ch_sample"),
            self.payment_refunded("ch_sample", "re_sample"),
            self.order_cancelled("out of stock: SKU-MUG"),
        ]
    }
}

fn customer() -> CustomerId {
    CustomerId::parse(CUSTOMER).expect("the sample customer id is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;
    use crate::money::{Currency, Money};
    use crate::order::OrderStatus;
    use crate::ports::InMemoryOrderStore;

    #[test]
    fn every_event_type_has_a_sample_that_round_trips() {
        let sample = SampleOrder::placed(APPROVED_TOKEN);
        let events = sample.every_event();
        let types: Vec<EventType> = events.iter().map(Envelope::event_type).collect();
        for t in EventType::ALL {
            assert!(types.contains(&t), "no sample {t} event");
        }
        for event in &events {
            assert_eq!(event.order_id, sample.order.order_id);
            assert_eq!(event.order_placed_at, sample.placed.order_placed_at);
            assert_eq!(&Envelope::decode(&event.to_json().unwrap()).unwrap(), event);
        }
    }

    #[test]
    fn the_sample_order_totals_its_lines() {
        let sample = SampleOrder::placed(APPROVED_TOKEN);
        assert_eq!(sample.order.total, Money::new(4499, Currency::EUR));
        let Event::OrderPlaced(placed) = &sample.placed.event else {
            panic!("not an OrderPlaced event: {:?}", sample.placed);
        };
        assert_eq!(placed.total, sample.order.total);
        assert_eq!(placed.legacy_payment_token(), None);
        assert_eq!(sample.payment_token.expose(), APPROVED_TOKEN);
    }

    #[tokio::test]
    async fn a_stored_sample_is_pending_with_its_token_and_its_event_in_the_outbox() {
        let store = InMemoryOrderStore::default();
        let sample = SampleOrder::placed(APPROVED_TOKEN);
        assert_eq!(sample.store_in(&store).await, Ok(PlaceOutcome::Placed));
        assert!(matches!(
            sample.store_in(&store).await,
            Ok(PlaceOutcome::KeyTaken(Some(_)))
        ));
        let stored = store
            .get_stored(sample.order.order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.order.status, OrderStatus::Pending);
        assert_eq!(stored.payment_token, Some(sample.payment_token));
        assert_eq!(store.outbox(), vec![sample.placed]);
    }
}
