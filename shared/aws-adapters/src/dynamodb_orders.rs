//! [`OrderStore`] on the orders table, writing the outbox row in the same transaction.
//!
//! The card token rides on the order's item ([`PAYMENT_TOKEN`]): put with the order,
//! read by the same `GetItem` that reads the order for payment, and removed by the
//! status update that settles the payment. So keeping it out of events costs no request.

use domain::failure::Failure;
use std::collections::HashMap;
use tracing::Instrument;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, Update};

use crate::contention::{Cancellation, Tried, retry_contention};
use crate::dynamodb_idempotency::{DynamoDbIdempotencyStore, record_from_item};
use crate::tables::{ORDER_SK, OWNER, OutboxRow, PAYMENT_TOKEN, order_pk};
use crate::transaction::{Sent, Transaction, names};
use domain::events::Envelope;
use domain::idempotency::IdempotencyRecord;
use domain::ids::{Caller, OrderId};
use domain::order::{Order, PaymentToken};
use domain::ports::{OrderStore, PlaceOutcome, StoredOrder, Transition, TransitionOutcome};

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
    /// (named [`names::ORDER`]; when the change settles the payment it also removes the
    /// card token), then one conditional put per event (named [`names::event`]).
    /// Exposed so a function whose change spans more tables (inventory) can add its own
    /// items to the same transaction, and read the order's part of a cancellation with
    /// [`DynamoDbOrderStore::transition_outcome`].
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
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(order_pk(transition.order_id)))
            .key("sk", AttributeValue::S(ORDER_SK.into()))
            .update_expression(status_update_expression(transition))
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
            );
        if transition.settles_payment() {
            // DynamoDB refuses a name the expression does not use, so only here.
            update = update.expression_attribute_names("#token", PAYMENT_TOKEN);
        }
        let update = update
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

/// The status update of `transition`: the new status and time, and, when it settles the
/// payment, the card token's removal (`REMOVE` of an absent attribute is no error, so an
/// order stored without a token settles the same way).
fn status_update_expression(transition: &Transition) -> &'static str {
    if transition.settles_payment() {
        "SET #status = :to, updated_at = :at REMOVE #token"
    } else {
        "SET #status = :to, updated_at = :at"
    }
}

/// The order's item: the order's fields, its keys, and its owner and card token beside
/// them.
fn order_item(stored: &StoredOrder) -> Result<HashMap<String, AttributeValue>, Failure> {
    let order = &stored.order;
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(order)
        .map_err(|e| Failure::Permanent(format!("encoding order: {e}")))?;
    item.insert("pk".into(), AttributeValue::S(order_pk(order.order_id)));
    item.insert("sk".into(), AttributeValue::S(ORDER_SK.into()));
    if let Some(owner) = &stored.owner {
        item.insert(OWNER.into(), AttributeValue::S(owner.to_string()));
    }
    if let Some(token) = &stored.payment_token {
        item.insert(
            PAYMENT_TOKEN.into(),
            AttributeValue::S(token.expose().to_owned()),
        );
    }
    Ok(item)
}

/// The order, its owner and its card token from the order's item. The owner and the
/// token are taken out before the order is decoded, so no reader of an [`Order`] can come
/// across them. An error names the order and the field, never the token's value.
fn decode_order(
    id: OrderId,
    mut item: HashMap<String, AttributeValue>,
) -> Result<StoredOrder, Failure> {
    item.remove("pk");
    item.remove("sk");
    let payment_token = match item.remove(PAYMENT_TOKEN) {
        None => None,
        Some(AttributeValue::S(token)) => Some(PaymentToken::new(token)),
        Some(_) => {
            return Err(Failure::Permanent(format!(
                "decoding order {id}: {PAYMENT_TOKEN} is not a string"
            )));
        }
    };
    let owner = match item.remove(OWNER) {
        None => None,
        Some(AttributeValue::S(owner)) => Some(Caller::parse(&owner).ok_or_else(|| {
            Failure::Permanent(format!("decoding order {id}: {OWNER} is not a caller"))
        })?),
        Some(_) => {
            return Err(Failure::Permanent(format!(
                "decoding order {id}: {OWNER} is not a string"
            )));
        }
    };
    let order = serde_dynamo::from_item(item)
        .map_err(|e| Failure::Permanent(format!("decoding order {id}: {e}")))?;
    Ok(StoredOrder {
        order,
        owner,
        payment_token,
    })
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
        new: &StoredOrder,
        event: &Envelope,
        idempotency: &IdempotencyRecord,
    ) -> Result<PlaceOutcome, Failure> {
        let now = new.order.created_at.timestamp();
        let key_put = self
            .idempotency
            .as_ref()
            .ok_or_else(|| Failure::Permanent("placing orders needs the idempotency table".into()))?
            .put_if_absent_request(idempotency, now)?;
        let mut transaction = Transaction::new();
        transaction
            .put(names::KEY, key_put)?
            .put(names::ORDER, new_item_put(&self.table, order_item(new)?)?)?
            .put(
                names::event(event.id),
                new_item_put(&self.table, outbox_item(event)?)?,
            )?;
        match transaction.send(&self.client, PLACE).await? {
            Sent::Committed => Ok(PlaceOutcome::Placed),
            // The key's condition failed: the key is taken, and its record came back
            // with the cancellation (ALL_OLD) for the caller to answer from.
            Sent::Cancelled(c) if c.condition_failed(names::KEY) => {
                let existing = c
                    .image(names::KEY)
                    .cloned()
                    .map(record_from_item)
                    .transpose()?;
                Ok(PlaceOutcome::KeyTaken(existing))
            }
            // A conflict on it: a concurrent request with the same key is writing it
            // right now; there is no record to answer from yet.
            Sent::Cancelled(c) if c.conflicted(names::KEY) => Ok(PlaceOutcome::KeyTaken(None)),
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
        Ok(self.get_stored(id).await?.map(|stored| stored.order))
    }

    async fn get_stored(&self, id: OrderId) -> Result<Option<StoredOrder>, Failure> {
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
        output.item.map(|item| decode_order(id, item)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use domain::fixtures::{APPROVED_TOKEN, SampleOrder};
    use domain::order::OrderStatus;

    #[test]
    fn the_order_item_holds_the_token_beside_the_order_and_reads_back_apart() {
        let sample = SampleOrder::placed(APPROVED_TOKEN);
        let item = order_item(&sample.stored()).unwrap();
        assert_eq!(
            item.get(PAYMENT_TOKEN)
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            Some(APPROVED_TOKEN)
        );

        let read = decode_order(sample.order.order_id, item.clone()).unwrap();
        assert_eq!(read, sample.stored());
        let api_json = serde_json::to_string(&read.order).unwrap();
        assert!(!api_json.contains(APPROVED_TOKEN), "{api_json}");
        assert!(!api_json.contains(domain::fixtures::OWNER), "{api_json}");

        let mut settled = item;
        settled.remove(PAYMENT_TOKEN);
        let read = decode_order(sample.order.order_id, settled).unwrap();
        assert_eq!(read.payment_token, None);
    }

    #[test]
    fn a_token_that_is_not_a_string_is_named_but_not_shown() {
        let sample = SampleOrder::placed(APPROVED_TOKEN);
        let mut item = order_item(&sample.stored()).unwrap();
        item.insert(PAYMENT_TOKEN.into(), AttributeValue::N("4242".into()));
        let error = decode_order(sample.order.order_id, item)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(PAYMENT_TOKEN) && !error.contains("4242"),
            "{error}"
        );
    }

    #[test]
    fn only_the_update_that_settles_the_payment_removes_the_token() {
        let sample = SampleOrder::placed(APPROVED_TOKEN);
        let transition = |from, to| Transition {
            order_id: sample.order.order_id,
            from,
            to,
            events: vec![],
            at: Utc::now(),
        };
        for (from, to) in domain::order::TRANSITIONS {
            let expression = status_update_expression(&transition(*from, *to));
            assert_eq!(
                expression.ends_with("REMOVE #token"),
                *from == OrderStatus::Pending,
                "{from} -> {to}: {expression}"
            );
        }
    }
}
