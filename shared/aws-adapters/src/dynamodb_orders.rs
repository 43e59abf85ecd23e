//! [`OrderStore`] on the orders table, writing the outbox row in the same transaction.

use domain::failure::Failure;
use std::collections::HashMap;
use tracing::Instrument;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use crate::tables::{ORDER_SK, OutboxRow, order_pk};
use crate::{Cancellation, DynamoDbIdempotencyStore, Tried, retry_contention};
use domain::events::Envelope;
use domain::idempotency::IdempotencyRecord;
use domain::ids::OrderId;
use domain::order::Order;
use domain::ports::{OrderStore, PlaceOutcome, Transition, TransitionOutcome};

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

impl DynamoDbOrderStore {
    /// The transaction items of a [`Transition`]: the conditional status update first,
    /// then one conditional put per event. Exposed so a function whose change spans
    /// more tables (inventory) can add its own items to the same transaction.
    pub fn transition_items(
        &self,
        transition: &Transition,
    ) -> Result<Vec<TransactWriteItem>, Failure> {
        if !transition.from.can_become(transition.to) {
            return Err(Failure::Permanent(format!(
                "{} -> {} is not an allowed transition",
                transition.from, transition.to
            )));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(order_pk(transition.order_id)))
            .key("sk", AttributeValue::S(ORDER_SK.into()))
            .update_expression("SET #status = :to, updated_at = :at")
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", AttributeValue::S(transition.to.as_str().into()))
            .expression_attribute_values(
                ":from",
                AttributeValue::S(transition.from.as_str().into()),
            )
            .expression_attribute_values(
                ":at",
                AttributeValue::S(
                    transition
                        .at
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ),
            )
            .build()
            .map_err(|e| Failure::Permanent(format!("building status update: {e}")))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(self.event_items(&transition.events)?);
        Ok(items)
    }

    /// The transaction items that write `events` to the outbox, each only once.
    pub fn event_items(&self, events: &[Envelope]) -> Result<Vec<TransactWriteItem>, Failure> {
        events
            .iter()
            .map(|event| new_item_put(&self.table, outbox_item(event)?))
            .collect()
    }

    /// Interprets a cancelled transaction whose items start with
    /// [`DynamoDbOrderStore::transition_items`] at `offset`: a failed condition on one of
    /// the events means an earlier attempt stored them; on the status update, that the
    /// order is elsewhere. Anything else is `Err`, transient when it was contention.
    pub async fn transition_outcome(
        &self,
        transition: &Transition,
        cancellation: Cancellation,
        offset: usize,
    ) -> Result<TransitionOutcome, Failure> {
        let events = transition.events.len();
        if (offset + 1..offset + 1 + events).any(|i| cancellation.condition_failed(i)) {
            return Ok(TransitionOutcome::AlreadyDone);
        }
        if cancellation.condition_failed(offset) {
            let current = self.get(transition.order_id).await?.map(|o| o.status);
            return Ok(TransitionOutcome::NotAllowed { current });
        }
        Err(cancellation.into_error("TransactWriteItems transition"))
    }

    /// The client, for adapters composing transactions with this table.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one `TransactWriteItems` of `items`, traced as its AWS call: the one place
    /// every transaction of the pipeline goes through.
    pub async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError, HttpResponse>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.TransactWriteItems"))
            .await
            .map(|_| ())
    }
}

fn order_item(order: &Order) -> Result<HashMap<String, AttributeValue>, Failure> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(order)
        .map_err(|e| Failure::Permanent(format!("encoding order: {e}")))?;
    item.insert("pk".into(), AttributeValue::S(order_pk(order.order_id)));
    item.insert("sk".into(), AttributeValue::S(ORDER_SK.into()));
    Ok(item)
}

fn outbox_item(event: &Envelope) -> Result<HashMap<String, AttributeValue>, Failure> {
    let row =
        OutboxRow::of(event).map_err(|e| Failure::Permanent(format!("encoding event: {e}")))?;
    serde_dynamo::to_item(row).map_err(|e| Failure::Permanent(format!("encoding outbox row: {e}")))
}

fn new_item_put(
    table: &str,
    item: HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, Failure> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| Failure::Permanent(format!("building put: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

impl OrderStore for DynamoDbOrderStore {
    async fn place(
        &self,
        order: &Order,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> Result<PlaceOutcome, Failure> {
        let now = order.created_at.timestamp();
        let key_put = self
            .idempotency
            .as_ref()
            .ok_or_else(|| Failure::Permanent("placing orders needs the idempotency table".into()))?
            .put_if_absent_request(idempotency, now)?;
        let result = self
            .transact(vec![
                TransactWriteItem::builder().put(key_put).build(),
                new_item_put(&self.table, order_item(order)?)?,
                new_item_put(&self.table, outbox_item(event)?)?,
            ])
            .await;
        match result {
            Ok(_) => Ok(PlaceOutcome::Placed),
            Err(e) => match Cancellation::of(&e) {
                // The idempotency put is item 0. Its condition failed: the key is taken.
                // A conflict on it: a concurrent request with the same key is writing it
                // right now. Either way the caller re-reads the key and answers from it.
                Some(c) if c.condition_failed(0) || c.conflicted(0) => Ok(PlaceOutcome::KeyTaken),
                Some(c) => Err(c.into_error("TransactWriteItems place order")),
                None => Err(crate::sdk::failure("TransactWriteItems place order", &e)),
            },
        }
    }

    async fn transition(&self, transition: &Transition) -> Result<TransitionOutcome, Failure> {
        let items = self.transition_items(transition)?;
        retry_contention("TransactWriteItems transition", || async {
            match self.transact(items.clone()).await {
                Ok(()) => Tried::Settled(Ok(TransitionOutcome::Applied)),
                Err(e) => match Cancellation::of(&e) {
                    Some(c) if c.is_contention() => Tried::Contended(c),
                    Some(c) => Tried::Settled(self.transition_outcome(transition, c, 0).await),
                    None => Tried::Settled(Err(crate::sdk::failure(
                        "TransactWriteItems transition",
                        &e,
                    ))),
                },
            }
        })
        .await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, Failure> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(order_pk(id)))
            .key("sk", AttributeValue::S(ORDER_SK.into()))
            .consistent_read(true)
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.GetItem"))
            .await
            .map_err(|e| crate::sdk::failure("GetItem order", &e))?;
        output
            .item
            .map(|mut item| {
                item.remove("pk");
                item.remove("sk");
                serde_dynamo::from_item(item)
                    .map_err(|e| Failure::Permanent(format!("decoding order {id}: {e}")))
            })
            .transpose()
    }
}
