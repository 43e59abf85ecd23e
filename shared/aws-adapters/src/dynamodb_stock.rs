//! [`StockStore`] on the inventory table: every line of an order reserved in **one**
//! `TransactWriteItems`, together with the order's status change and its events.
//!
//! The inventory table's items are laid out in [`crate::tables`]: the reservation item is
//! written once per order (reserved or failed), which makes a replay a no-op. The
//! transaction's items are named ([`crate::transaction::names`]), and a cancellation is
//! read by those names.

use domain::failure::Failure;
use std::collections::HashMap;
use tracing::Instrument;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, Update};
use domain::events::{Envelope, ReservedLine};
use domain::ids::{OrderId, Sku};
use domain::ports::{ReserveOutcome, StockStore, Transition, TransitionOutcome};

use crate::contention::{Cancellation, Tried, retry_contention};
use crate::dynamodb_orders::DynamoDbOrderStore;
use crate::tables::{reservation_pk, sku_pk};
use crate::transaction::{Sent, Transaction, names};

/// The operation a reservation's failures are named by.
const RESERVE: &str = "TransactWriteItems reserve";

/// The operation a shortage's failures are named by.
const SHORTAGE: &str = "TransactWriteItems shortage";

/// Stock and reservations in DynamoDB, with the order's change through the order store,
/// all in one transaction.
#[derive(Debug, Clone)]
pub struct DynamoDbStockStore {
    client: Client,
    table: String,
    orders: DynamoDbOrderStore,
}

fn permanent(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Permanent(format!("building {what}: {e}"))
}

impl DynamoDbStockStore {
    /// Stock in `inventory_table` through `client`; order changes through `orders`.
    pub fn new(
        client: Client,
        inventory_table: impl Into<String>,
        orders: DynamoDbOrderStore,
    ) -> Self {
        Self {
            client,
            table: inventory_table.into(),
            orders,
        }
    }

    fn reservation_put(
        &self,
        order_id: OrderId,
        status: &str,
        detail: String,
    ) -> Result<Put, Failure> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(reservation_pk(order_id))),
                ("status".to_owned(), AttributeValue::S(status.into())),
                ("detail".to_owned(), AttributeValue::S(detail)),
            ])))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| permanent("reservation", e))
    }

    /// The reservation's transaction: one conditional decrement per line
    /// (`stock:<sku>`), the reservation record (`reservation`), then the order's status
    /// update and events (`order`, `event:<id>`).
    fn reserve_transaction(
        &self,
        lines: &[ReservedLine],
        confirm: &Transition,
    ) -> Result<Transaction, Failure> {
        let mut transaction = Transaction::new();
        for line in lines {
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(sku_pk(&line.sku)))
                // Stock never goes negative: the decrement only applies if enough is left.
                .update_expression("SET stock = stock - :units")
                .condition_expression("stock >= :units")
                .expression_attribute_values(
                    ":units",
                    AttributeValue::N(line.quantity.get().to_string()),
                )
                .build()
                .map_err(|e| permanent("stock update", e))?;
            transaction.update(names::stock(&line.sku), update)?;
        }
        let detail = serde_json::to_string(lines).map_err(|e| permanent("reservation", e))?;
        transaction.put(
            names::RESERVATION,
            self.reservation_put(confirm.order_id, "RESERVED", detail)?,
        )?;
        self.orders.add_transition(&mut transaction, confirm)?;
        Ok(transaction)
    }

    /// The shortage's transaction: the reservation record marked failed and the events
    /// (`reservation`, `event:<id>`).
    fn shortage_transaction(
        &self,
        order_id: OrderId,
        short: &[Sku],
        events: &[Envelope],
    ) -> Result<Transaction, Failure> {
        let detail = short.iter().map(Sku::as_str).collect::<Vec<_>>().join(",");
        let mut transaction = Transaction::new();
        transaction.put(
            names::RESERVATION,
            self.reservation_put(order_id, "FAILED", detail)?,
        )?;
        self.orders.add_events(&mut transaction, events)?;
        Ok(transaction)
    }

    /// Reads a cancelled reservation item by item: the reservation record already there
    /// means a duplicate; the order not PAID, a refused move; a stock
    /// condition, a shortage of that SKU.
    async fn reserve_cancelled(
        &self,
        lines: &[ReservedLine],
        confirm: &Transition,
        cancellation: Cancellation,
    ) -> Result<ReserveOutcome, Failure> {
        if cancellation.condition_failed(names::RESERVATION) {
            return Ok(ReserveOutcome::AlreadyDone);
        }
        let short: Vec<Sku> = lines
            .iter()
            .filter(|line| cancellation.condition_failed(&names::stock(&line.sku)))
            .map(|line| line.sku.clone())
            .collect();
        match self.orders.transition_outcome(confirm, cancellation).await {
            Ok(TransitionOutcome::AlreadyDone) => Ok(ReserveOutcome::AlreadyDone),
            Ok(not_allowed @ TransitionOutcome::NotAllowed { .. }) => {
                Ok(ReserveOutcome::NotAllowed(not_allowed))
            }
            _ if !short.is_empty() => Ok(ReserveOutcome::Short(short)),
            Ok(TransitionOutcome::Applied) => Err(Failure::Permanent(
                "a cancelled reservation cannot have applied its status change".into(),
            )),
            Err(error) => Err(error),
        }
    }

    /// Whether a cancelled shortage failed on one of *our* writes' conditions (the
    /// reservation record, an event): then an earlier attempt stored it.
    fn shortage_stored(&self, events: &[Envelope], cancellation: &Cancellation) -> bool {
        cancellation.condition_failed(names::RESERVATION)
            || self.orders.events_stored(events, cancellation)
    }
}

impl StockStore for DynamoDbStockStore {
    async fn reserve(
        &self,
        lines: &[ReservedLine],
        confirm: &Transition,
    ) -> Result<ReserveOutcome, Failure> {
        let transaction = self.reserve_transaction(lines, confirm)?;
        // Every order for a hot SKU updates that SKU's item: overlapping transactions are
        // cancelled for contention, and are tried again here rather than after a
        // visibility timeout.
        retry_contention(RESERVE, || async {
            match transaction.send(&self.client, RESERVE).await {
                Ok(Sent::Committed) => Tried::Settled(Ok(ReserveOutcome::Reserved)),
                Ok(Sent::Cancelled(c)) if c.is_contention() => Tried::Contended(c),
                Ok(Sent::Cancelled(c)) => {
                    Tried::Settled(self.reserve_cancelled(lines, confirm, c).await)
                }
                Err(failure) => Tried::Settled(Err(failure)),
            }
        })
        .await
    }

    async fn record_shortage(
        &self,
        order_id: OrderId,
        short: &[Sku],
        events: &[Envelope],
    ) -> Result<ReserveOutcome, Failure> {
        let transaction = self.shortage_transaction(order_id, short, events)?;
        retry_contention(SHORTAGE, || async {
            match transaction.send(&self.client, SHORTAGE).await {
                Ok(Sent::Committed) => Tried::Settled(Ok(ReserveOutcome::Short(short.to_vec()))),
                // Only a failed condition on one of our writes means an earlier attempt
                // stored the shortage. A conflict or throttling means nothing was stored:
                // reading it as a duplicate would ack the message and leave the customer
                // charged.
                Ok(Sent::Cancelled(c)) if self.shortage_stored(events, &c) => {
                    Tried::Settled(Ok(ReserveOutcome::AlreadyDone))
                }
                Ok(Sent::Cancelled(c)) if c.is_contention() => Tried::Contended(c),
                Ok(Sent::Cancelled(c)) => Tried::Settled(Err(c.into_error(SHORTAGE))),
                Err(failure) => Tried::Settled(Err(failure)),
            }
        })
        .await
    }

    async fn set_stock(&self, sku: &Sku, units: u64) -> Result<(), Failure> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(sku_pk(sku)))
            .item("stock", AttributeValue::N(units.to_string()))
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.PutItem"))
            .await
            .map(|_| ())
            .map_err(|e| crate::sdk::failure("PutItem stock", &e))
    }

    async fn stock(&self, sku: &Sku) -> Result<Option<u64>, Failure> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(sku_pk(sku)))
            .consistent_read(true)
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.GetItem"))
            .await
            .map_err(|e| crate::sdk::failure("GetItem stock", &e))?
            .item;
        Ok(item
            .and_then(|i| i.get("stock").and_then(|s| s.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    //! The requests and the reading of cancellations, without DynamoDB: the integration
    //! tests (`tests/integration/contention.rs`, `saga.rs`, `deliveries.rs`) send them.

    use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
    use chrono::Utc;
    use domain::events::{Event, InventoryFailed, InventoryReserved};
    use domain::ids::{CorrelationId, CustomerId};
    use domain::money::{Currency, Money};
    use domain::order::{OrderStatus, Quantity};

    use super::*;

    fn store() -> DynamoDbStockStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        let client = Client::from_conf(config);
        DynamoDbStockStore::new(
            client.clone(),
            "inventory",
            DynamoDbOrderStore::new(client, "orders"),
        )
    }

    fn line(sku: &str, units: u32) -> ReservedLine {
        ReservedLine {
            sku: Sku::parse(sku).unwrap(),
            quantity: Quantity::new(units).unwrap(),
        }
    }

    fn envelope(order_id: OrderId, event: Event) -> Envelope {
        Envelope::new(
            order_id,
            CorrelationId::parse("stock-test").unwrap(),
            Utc::now(),
            event,
        )
    }

    fn confirm(lines: &[ReservedLine]) -> Transition {
        let order_id = OrderId::new();
        Transition {
            order_id,
            from: OrderStatus::Paid,
            to: OrderStatus::Confirmed,
            events: vec![envelope(
                order_id,
                Event::InventoryReserved(InventoryReserved {
                    customer_id: CustomerId::parse("cust-0001").unwrap(),
                    lines: lines.to_vec(),
                }),
            )],
            at: Utc::now(),
        }
    }

    fn cancelled(transaction: &Transaction, failed: &[&str]) -> Cancellation {
        Cancellation::from_codes(transaction.names().iter().map(|name| {
            let code = failed
                .contains(&name.as_str())
                .then_some("ConditionalCheckFailed");
            (name.clone(), code)
        }))
    }

    #[test]
    fn a_reservation_is_one_transaction_of_named_items_in_the_same_layout() {
        let store = store();
        let lines = [line("SKU-MUG", 2), line("SKU-TEE", 1)];
        let confirm = confirm(&lines);
        let transaction = store.reserve_transaction(&lines, &confirm).unwrap();
        let event = names::event(confirm.events[0].id);
        assert_eq!(
            transaction.names(),
            [
                "stock:SKU-MUG",
                "stock:SKU-TEE",
                "reservation",
                "order",
                event.as_str()
            ]
        );
        let items = transaction.items();
        let decrement = items[0].update().unwrap();
        assert_eq!(decrement.table_name(), "inventory");
        assert_eq!(
            decrement.key()["pk"],
            AttributeValue::S("SKU#SKU-MUG".into())
        );
        assert_eq!(decrement.condition_expression(), Some("stock >= :units"));
        assert_eq!(
            decrement.expression_attribute_values().unwrap()[":units"],
            AttributeValue::N("2".into())
        );
        let reservation = items[2].put().unwrap();
        assert_eq!(
            reservation.item()["pk"],
            AttributeValue::S(reservation_pk(confirm.order_id))
        );
        assert_eq!(
            reservation.item()["status"],
            AttributeValue::S("RESERVED".into())
        );
        assert_eq!(
            reservation.condition_expression(),
            Some("attribute_not_exists(pk)")
        );
        assert_eq!(items[3].update().unwrap().table_name(), "orders");
        assert_eq!(items[4].put().unwrap().table_name(), "orders");
    }

    #[tokio::test]
    async fn a_cancelled_reservation_is_read_by_name() {
        let store = store();
        let lines = [line("SKU-MUG", 2), line("SKU-TEE", 1)];
        let confirm = confirm(&lines);
        let transaction = store.reserve_transaction(&lines, &confirm).unwrap();

        let short = cancelled(&transaction, &["stock:SKU-TEE"]);
        assert_eq!(
            store.reserve_cancelled(&lines, &confirm, short).await,
            Ok(ReserveOutcome::Short(vec![Sku::parse("SKU-TEE").unwrap()]))
        );
        let duplicate = cancelled(&transaction, &["reservation", "stock:SKU-MUG"]);
        assert_eq!(
            store.reserve_cancelled(&lines, &confirm, duplicate).await,
            Ok(ReserveOutcome::AlreadyDone),
            "the reservation record is there: an earlier attempt reserved or failed it"
        );
        let event = names::event(confirm.events[0].id);
        let replayed = cancelled(&transaction, &[event.as_str(), "stock:SKU-MUG"]);
        assert_eq!(
            store.reserve_cancelled(&lines, &confirm, replayed).await,
            Ok(ReserveOutcome::AlreadyDone),
            "the order's events are stored: an earlier attempt confirmed it"
        );
        let invalid = Cancellation::from_codes([("stock:SKU-MUG", Some("ValidationError"))]);
        assert!(
            store
                .reserve_cancelled(&lines, &confirm, invalid)
                .await
                .is_err_and(|e| !e.is_transient())
        );
    }

    #[test]
    fn a_shortage_is_stored_once_and_only_our_conditions_say_so() {
        let store = store();
        let order_id = OrderId::new();
        let failed = envelope(
            order_id,
            Event::InventoryFailed(InventoryFailed {
                customer_id: CustomerId::parse("cust-0001").unwrap(),
                short_skus: vec![Sku::parse("SKU-MUG").unwrap()],
                charge_id: "ch_1".into(),
                amount: Money::new(1500, Currency::USD),
            }),
        );
        let events = std::slice::from_ref(&failed);
        let short = [Sku::parse("SKU-MUG").unwrap()];
        let transaction = store
            .shortage_transaction(order_id, &short, events)
            .unwrap();
        let event = names::event(failed.id);
        assert_eq!(transaction.names(), ["reservation", event.as_str()]);
        let reservation = transaction.items()[0].put().unwrap();
        assert_eq!(
            reservation.item()["status"],
            AttributeValue::S("FAILED".into())
        );
        assert_eq!(
            reservation.item()["detail"],
            AttributeValue::S("SKU-MUG".into())
        );

        for ours in ["reservation", event.as_str()] {
            assert!(
                store.shortage_stored(events, &cancelled(&transaction, &[ours])),
                "{ours}"
            );
        }
        let conflict = Cancellation::from_codes([
            ("reservation", Some("TransactionConflict")),
            ("event", None),
        ]);
        assert!(!store.shortage_stored(events, &conflict));
        assert!(conflict.is_contention());
    }
}
