//! Stock and reservations in DynamoDB: every line of an order reserved in **one**
//! `TransactWriteItems`, together with the order's status change and its events.
//!
//! The inventory table's items are laid out in [`aws_adapters::tables`]: the reservation
//! item is written once per order (reserved or failed), which makes a replay a no-op.

use domain::failure::Failure;
use std::collections::HashMap;
use tracing::Instrument;

use aws_adapters::tables::{reservation_pk, sku_pk};
use aws_adapters::{
    Cancellation, DynamoDbIdempotencyStore, DynamoDbOrderStore, Tried, retry_contention,
};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use domain::events::{Envelope, ReservedLine};
use domain::idempotency::IdempotencyRecord;
use domain::ids::{OrderId, Sku};
use domain::ports::{Transition, TransitionOutcome};

/// What a reservation attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every line reserved, the order confirmed, the events stored.
    Reserved,
    /// This order (or this event) was handled before: nothing changed.
    AlreadyDone,
    /// These SKUs lacked stock: nothing was reserved.
    Short(Vec<Sku>),
    /// The order is not PAID: nothing was reserved, no status moved.
    NotAllowed(TransitionOutcome),
}

/// Stock and reservations.
#[derive(Debug, Clone)]
pub struct DynamoDbReservations {
    table: String,
    orders: DynamoDbOrderStore,
    idempotency: DynamoDbIdempotencyStore,
}

fn permanent(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Permanent(format!("building {what}: {e}"))
}

impl DynamoDbReservations {
    /// Stock in `table`; order changes through `orders`; keys through `idempotency`.
    pub fn new(
        table: impl Into<String>,
        orders: DynamoDbOrderStore,
        idempotency: DynamoDbIdempotencyStore,
    ) -> Self {
        Self {
            table: table.into(),
            orders,
            idempotency,
        }
    }

    /// Sets a SKU's stock level (seeding for demos and tests).
    pub async fn set_stock(&self, sku: &Sku, units: u64) -> Result<(), Failure> {
        self.orders
            .client()
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(sku_pk(sku)))
            .item("stock", AttributeValue::N(units.to_string()))
            .send()
            .instrument(aws_adapters::sdk::call_span("DynamoDB.PutItem"))
            .await
            .map(|_| ())
            .map_err(|e| aws_adapters::sdk::failure("PutItem stock", &e))
    }

    /// A SKU's stock level, if the SKU is stocked at all.
    pub async fn stock(&self, sku: &Sku) -> Result<Option<u64>, Failure> {
        let item = self
            .orders
            .client()
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(sku_pk(sku)))
            .consistent_read(true)
            .send()
            .instrument(aws_adapters::sdk::call_span("DynamoDB.GetItem"))
            .await
            .map_err(|e| aws_adapters::sdk::failure("GetItem stock", &e))?
            .item;
        Ok(item
            .and_then(|i| i.get("stock").and_then(|s| s.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok()))
    }

    fn reservation_put(
        &self,
        order_id: OrderId,
        status: &str,
        detail: String,
    ) -> Result<TransactWriteItem, Failure> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(reservation_pk(order_id))),
                ("status".to_owned(), AttributeValue::S(status.into())),
                ("detail".to_owned(), AttributeValue::S(detail)),
            ])))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| permanent("reservation", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn key_put(&self, key: &IdempotencyRecord, now: i64) -> Result<TransactWriteItem, Failure> {
        Ok(TransactWriteItem::builder()
            .put(self.idempotency.put_if_absent_request(key, now)?)
            .build())
    }

    /// Reserves every line, records the reservation and the idempotency key, and applies
    /// `confirm` (PAID -> CONFIRMED with its events): all in one transaction.
    pub async fn reserve(
        &self,
        lines: &[ReservedLine],
        key: &IdempotencyRecord,
        confirm: &Transition,
    ) -> Result<ReserveOutcome, Failure> {
        let mut items = Vec::with_capacity(lines.len() + 4);
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
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let detail = serde_json::to_string(lines).map_err(|e| permanent("reservation", e))?;
        items.push(self.reservation_put(confirm.order_id, "RESERVED", detail)?);
        items.push(self.key_put(key, confirm.at.timestamp())?);
        let offset = items.len();
        items.extend(self.orders.transition_items(confirm)?);

        // Every order for a hot SKU updates that SKU's item: overlapping transactions are
        // cancelled for contention, and are tried again here rather than after a
        // visibility timeout.
        retry_contention("TransactWriteItems reserve", || async {
            let error = match self.orders.transact(items.clone()).await {
                Ok(()) => return Tried::Settled(Ok(ReserveOutcome::Reserved)),
                Err(error) => error,
            };
            match Cancellation::of(&error) {
                None => Tried::Settled(Err(aws_adapters::sdk::failure(
                    "TransactWriteItems reserve",
                    &error,
                ))),
                Some(c) if c.is_contention() => Tried::Contended(c),
                Some(c) => Tried::Settled(self.reserve_cancelled(lines, confirm, c, offset).await),
            }
        })
        .await
    }

    /// Reads a cancelled reservation item by item: the reservation record or the key
    /// already there means a duplicate; the order not PAID, a refused move; a stock
    /// condition, a shortage of that SKU.
    async fn reserve_cancelled(
        &self,
        lines: &[ReservedLine],
        confirm: &Transition,
        cancellation: Cancellation,
        offset: usize,
    ) -> Result<ReserveOutcome, Failure> {
        let (reservation, key) = (lines.len(), lines.len() + 1);
        if cancellation.condition_failed(reservation) || cancellation.condition_failed(key) {
            return Ok(ReserveOutcome::AlreadyDone);
        }
        let short: Vec<Sku> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| cancellation.condition_failed(*i))
            .map(|(_, line)| line.sku.clone())
            .collect();
        match self
            .orders
            .transition_outcome(confirm, cancellation, offset)
            .await
        {
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

    /// Records that the order could not be reserved and stores `events` (the
    /// `InventoryFailed`), once: the order's status does not change here.
    pub async fn record_shortage(
        &self,
        order_id: OrderId,
        short: &[Sku],
        key: &IdempotencyRecord,
        events: &[Envelope],
        now: i64,
    ) -> Result<ReserveOutcome, Failure> {
        let detail = short.iter().map(Sku::as_str).collect::<Vec<_>>().join(",");
        let mut items = vec![
            self.reservation_put(order_id, "FAILED", detail)?,
            self.key_put(key, now)?,
        ];
        items.extend(self.orders.event_items(events)?);
        let item_count = items.len();
        retry_contention("TransactWriteItems shortage", || async {
            let error = match self.orders.transact(items.clone()).await {
                Ok(()) => return Tried::Settled(Ok(ReserveOutcome::Short(short.to_vec()))),
                Err(error) => error,
            };
            match Cancellation::of(&error) {
                // Only a failed condition on one of *our* writes (the reservation record,
                // the key, an event) means an earlier attempt stored the shortage. A
                // conflict or throttling means nothing was stored: reading it as a
                // duplicate would ack the message and leave the customer charged.
                Some(c) if (0..item_count).any(|i| c.condition_failed(i)) => {
                    Tried::Settled(Ok(ReserveOutcome::AlreadyDone))
                }
                Some(c) if c.is_contention() => Tried::Contended(c),
                Some(c) => Tried::Settled(Err(c.into_error("TransactWriteItems shortage"))),
                None => Tried::Settled(Err(aws_adapters::sdk::failure(
                    "TransactWriteItems shortage",
                    &error,
                ))),
            }
        })
        .await
    }
}
