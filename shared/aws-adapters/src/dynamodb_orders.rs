//! [`OrderStore`] on the orders table, writing the outbox row in the same transaction.

use domain::failure::Failure;
use std::collections::HashMap;
use tracing::Instrument;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, Update};

use crate::contention::{Cancellation, Tried, retry_contention};
use crate::dynamodb_idempotency::DynamoDbIdempotencyStore;
use crate::tables::{ORDER_SK, OutboxRow, order_pk};
use crate::transaction::{Sent, Transaction, names};
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
    /// Adds a [`Transition`]'s items to `transaction`: the conditional status update
    /// (named [`names::ORDER`]), then one conditional put per event (named
    /// [`names::event`]). Exposed so a function whose change spans more tables
    /// (inventory) can add its own items to the same transaction, and read the order's
    /// part of a cancellation with [`DynamoDbOrderStore::transition_outcome`].
    pub fn add_transition(
        &self,
        transaction: &mut Transaction,
        transition: &Transition,
    ) -> Result<(), Failure> {
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
        transaction.update(names::ORDER, update)?;
        self.add_events(transaction, &transition.events)
    }

    /// Adds the puts that write `events` to the outbox, each only once, each named
    /// [`names::event`] with its id.
    pub fn add_events(
        &self,
        transaction: &mut Transaction,
        events: &[Envelope],
    ) -> Result<(), Failure> {
        for event in events {
            transaction.put(
                names::event(event.id),
                new_item_put(&self.table, outbox_item(event)?)?,
            )?;
        }
        Ok(())
    }

    /// Whether a cancellation says an earlier attempt stored one of `events` (its
    /// conditional outbox put, added by [`DynamoDbOrderStore::add_events`], failed).
    pub fn events_stored(&self, events: &[Envelope], cancellation: &Cancellation) -> bool {
        events
            .iter()
            .any(|event| cancellation.condition_failed(&names::event(event.id)))
    }

    /// Interprets a cancelled transaction that holds the items
    /// [`DynamoDbOrderStore::add_transition`] added: a failed condition on one of the
    /// events means an earlier attempt stored them; on the status update, that the order
    /// is elsewhere. Anything else is `Err`, transient when it was contention.
    pub async fn transition_outcome(
        &self,
        transition: &Transition,
        cancellation: Cancellation,
    ) -> Result<TransitionOutcome, Failure> {
        if self.events_stored(&transition.events, &cancellation) {
            return Ok(TransitionOutcome::AlreadyDone);
        }
        if cancellation.condition_failed(names::ORDER) {
            let current = self.get(transition.order_id).await?.map(|o| o.status);
            return Ok(TransitionOutcome::NotAllowed { current });
        }
        Err(cancellation.into_error(TRANSITION))
    }
}

/// The operation a transition's failures are named by.
const TRANSITION: &str = "TransactWriteItems transition";

/// The operation an order's placement failures are named by.
const PLACE: &str = "TransactWriteItems place order";

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

fn new_item_put(table: &str, item: HashMap<String, AttributeValue>) -> Result<Put, Failure> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| Failure::Permanent(format!("building put: {e}")))
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
        let mut transaction = Transaction::new();
        transaction
            .put(names::KEY, key_put)?
            .put(names::ORDER, new_item_put(&self.table, order_item(order)?)?)?
            .put(
                names::event(event.id),
                new_item_put(&self.table, outbox_item(event)?)?,
            )?;
        match transaction.send(&self.client, PLACE).await? {
            Sent::Committed => Ok(PlaceOutcome::Placed),
            // The key's condition failed: the key is taken. A conflict on it: a concurrent
            // request with the same key is writing it right now. Either way the caller
            // re-reads the key and answers from it.
            Sent::Cancelled(c) if c.condition_failed(names::KEY) || c.conflicted(names::KEY) => {
                Ok(PlaceOutcome::KeyTaken)
            }
            Sent::Cancelled(c) => Err(c.into_error(PLACE)),
        }
    }

    async fn transition(&self, transition: &Transition) -> Result<TransitionOutcome, Failure> {
        let mut transaction = Transaction::new();
        self.add_transition(&mut transaction, transition)?;
        retry_contention(TRANSITION, || async {
            match transaction.send(&self.client, TRANSITION).await {
                Ok(Sent::Committed) => Tried::Settled(Ok(TransitionOutcome::Applied)),
                Ok(Sent::Cancelled(c)) if c.is_contention() => Tried::Contended(c),
                Ok(Sent::Cancelled(c)) => {
                    Tried::Settled(self.transition_outcome(transition, c).await)
                }
                Err(failure) => Tried::Settled(Err(failure)),
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
