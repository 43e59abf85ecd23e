//! [`OrderStore`] on the orders table, writing the outbox row in the same transaction.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::{DynamoDbIdempotencyStore, store_error};
use crate::events::Envelope;
use crate::idempotency::IdempotencyRecord;
use crate::ids::OrderId;
use crate::order::Order;
use crate::ports::{OrderStore, PlaceOutcome, StoreError};

/// Sort-key prefix of outbox rows; the relay's stream filter matches on it.
pub const OUTBOX_SK_PREFIX: &str = "EVENT#";

/// How long an outbox row is kept after it is written: long enough for the relay to
/// publish it (or for the failure destination to name it), short enough to keep the
/// table small.
pub const OUTBOX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

const ORDER_SK: &str = "ORDER";

/// Orders in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbOrderStore {
    client: Client,
    table: String,
    idempotency: Option<DynamoDbIdempotencyStore>,
}

impl DynamoDbOrderStore {
    /// Uses the orders table. Enough for reading; placing orders also needs
    /// [`DynamoDbOrderStore::with_idempotency_table`].
    pub fn new(client: Client, orders_table: impl Into<String>) -> Self {
        Self {
            client,
            table: orders_table.into(),
            idempotency: None,
        }
    }

    /// Names the idempotency table that [`OrderStore::place`] writes its record to.
    pub fn with_idempotency_table(mut self, idempotency_table: impl Into<String>) -> Self {
        self.idempotency = Some(DynamoDbIdempotencyStore::new(
            self.client.clone(),
            idempotency_table,
        ));
        self
    }
}

fn order_pk(id: OrderId) -> String {
    format!("ORDER#{id}")
}

fn order_item(order: &Order) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(order)
        .map_err(|e| StoreError::Permanent(format!("encoding order: {e}")))?;
    item.insert("pk".into(), AttributeValue::S(order_pk(order.order_id)));
    item.insert("sk".into(), AttributeValue::S(ORDER_SK.into()));
    Ok(item)
}

fn outbox_item(event: &Envelope) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let body = event
        .to_json()
        .map_err(|e| StoreError::Permanent(format!("encoding event: {e}")))?;
    let expires_at =
        event.occurred_at.timestamp() + i64::try_from(OUTBOX_TTL.as_secs()).unwrap_or(i64::MAX);
    Ok(HashMap::from([
        ("pk".into(), AttributeValue::S(order_pk(event.order_id))),
        (
            "sk".into(),
            AttributeValue::S(format!("{OUTBOX_SK_PREFIX}{}", event.id)),
        ),
        (
            "event_type".into(),
            AttributeValue::S(event.event_type().as_str().into()),
        ),
        (
            "correlation_id".into(),
            AttributeValue::S(event.correlation_id.to_string()),
        ),
        ("envelope".into(), AttributeValue::S(body)),
        (
            "expires_at".into(),
            AttributeValue::N(expires_at.to_string()),
        ),
    ]))
}

fn new_item_put(
    table: &str,
    item: HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| StoreError::Permanent(format!("building put: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

impl OrderStore for DynamoDbOrderStore {
    async fn place(
        &self,
        order: &Order,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> Result<PlaceOutcome, StoreError> {
        let now = order.created_at.timestamp();
        let key_put = self
            .idempotency
            .as_ref()
            .ok_or_else(|| {
                StoreError::Permanent("placing orders needs the idempotency table".into())
            })?
            .put_if_absent_request(idempotency, now)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(key_put).build())
            .transact_items(new_item_put(&self.table, order_item(order)?)?)
            .transact_items(new_item_put(&self.table, outbox_item(event)?)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PlaceOutcome::Placed),
            Err(e) => {
                // The idempotency put is item 0: if its condition failed, the key is taken.
                let key_taken = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                        cancelled
                            .cancellation_reasons()
                            .first()
                            .and_then(|reason| reason.code())
                            == Some("ConditionalCheckFailed")
                    }
                    _ => false,
                };
                if key_taken {
                    Ok(PlaceOutcome::KeyTaken)
                } else {
                    Err(store_error("TransactWriteItems place order", &e))
                }
            }
        }
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(order_pk(id)))
            .key("sk", AttributeValue::S(ORDER_SK.into()))
            .send()
            .await
            .map_err(|e| store_error("GetItem order", &e))?;
        output
            .item
            .map(|mut item| {
                item.remove("pk");
                item.remove("sk");
                serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::Permanent(format!("decoding order {id}: {e}")))
            })
            .transpose()
    }
}
