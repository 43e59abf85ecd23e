//! One `TransactWriteItems`, built item by item, each item under a name.
//!
//! DynamoDB answers a cancelled transaction with one reason per item, by position. When
//! several adapters contribute items to one transaction (inventory's stock decrements, its
//! reservation record, the event's key, the order's status change and its outbox rows),
//! reading those reasons by index makes every caller count the others' items. Here each
//! item is added with a name ([`names`]), and the [`Cancellation`] a cancelled send comes
//! back with is read by those names: `cancellation.condition_failed("reservation")`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use domain::failure::Failure;
use tracing::Instrument;

use crate::contention::Cancellation;

/// The names the pipeline's transactions give their items, spelled once (as
/// [`crate::tables`] spells the keys), so the adapter that adds an item and the one that
/// reads its cancellation reason cannot disagree.
pub mod names {
    use domain::ids::{EventId, Sku};

    /// The idempotency record written in the same transaction as its effect.
    pub const KEY: &str = "key";

    /// The order item: its creation, or its conditional status update.
    pub const ORDER: &str = "order";

    /// The inventory table's once-per-order reservation record.
    pub const RESERVATION: &str = "reservation";

    /// One SKU's conditional stock decrement.
    pub fn stock(sku: &Sku) -> String {
        format!("stock:{sku}")
    }

    /// One event's conditional outbox put.
    pub fn event(id: EventId) -> String {
        format!("event:{id}")
    }
}

/// What sending a [`Transaction`] came to, when DynamoDB answered.
#[derive(Debug)]
pub enum Sent {
    /// Every item was written.
    Committed,
    /// Nothing was written; the reasons, by item name.
    Cancelled(Cancellation),
}

/// A `TransactWriteItems` under construction: items in order, each with a unique name.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    names: Vec<String>,
    items: Vec<TransactWriteItem>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put under `name`.
    pub fn put(&mut self, name: impl Into<String>, put: Put) -> Result<&mut Self, Failure> {
        self.push(name.into(), TransactWriteItem::builder().put(put).build())
    }

    /// Adds an update under `name`.
    pub fn update(
        &mut self,
        name: impl Into<String>,
        update: Update,
    ) -> Result<&mut Self, Failure> {
        self.push(
            name.into(),
            TransactWriteItem::builder().update(update).build(),
        )
    }

    /// A name stands for one item: a second item under a name already used is refused
    /// (as DynamoDB refuses two writes of one item in a transaction), permanently.
    fn push(&mut self, name: String, item: TransactWriteItem) -> Result<&mut Self, Failure> {
        if self.names.contains(&name) {
            return Err(Failure::Permanent(format!(
                "two items named {name:?} in one transaction"
            )));
        }
        self.names.push(name);
        self.items.push(item);
        Ok(self)
    }

    /// The items' names, in the order they are sent.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The items, in the order they are sent (to inspect the request in tests).
    pub fn items(&self) -> &[TransactWriteItem] {
        &self.items
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The cancellation inside `error`, read by this transaction's item names; `None` if
    /// the error is something else.
    pub fn cancellation<R>(
        &self,
        error: &SdkError<TransactWriteItemsError, R>,
    ) -> Option<Cancellation> {
        Cancellation::of(error, &self.names)
    }

    /// Sends it as one `TransactWriteItems`, traced as its AWS call: the one place every
    /// transaction of the pipeline goes through. A cancellation is an answer
    /// ([`Sent::Cancelled`]); any other error is a [`Failure`] named by `operation`,
    /// classified by [`crate::sdk::failure`]. It can be sent again (a retry sends the very
    /// same items).
    pub async fn send(&self, client: &Client, operation: &str) -> Result<Sent, Failure> {
        let result = client
            .transact_write_items()
            .set_transact_items(Some(self.items.clone()))
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.TransactWriteItems"))
            .await;
        match result {
            Ok(_) => Ok(Sent::Committed),
            Err(error) => match self.cancellation(&error) {
                Some(cancellation) => Ok(Sent::Cancelled(cancellation)),
                None => Err(crate::sdk::failure(operation, &error)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
    use aws_smithy_types::body::SdkBody;
    use domain::ids::{EventId, Sku};

    use super::*;

    fn put(pk: &str) -> Put {
        Put::builder()
            .table_name("t")
            .item("pk", AttributeValue::S(pk.into()))
            .build()
            .unwrap()
    }

    fn update(pk: &str) -> Update {
        Update::builder()
            .table_name("t")
            .key("pk", AttributeValue::S(pk.into()))
            .update_expression("SET stock = stock - :units")
            .build()
            .unwrap()
    }

    /// A `TransactionCanceledException` with these codes, one per item, as DynamoDB
    /// sends it.
    fn cancelled(codes: &[&str]) -> SdkError<TransactWriteItemsError, HttpResponse> {
        let exception = TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(
                codes
                    .iter()
                    .map(|code| CancellationReason::builder().code(*code).build())
                    .collect(),
            ))
            .build();
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(exception),
            HttpResponse::new(400.try_into().unwrap(), SdkBody::empty()),
        )
    }

    fn three_items() -> Transaction {
        let mut tx = Transaction::new();
        tx.update(
            names::stock(&Sku::parse("SKU-MUG").unwrap()),
            update("SKU#SKU-MUG"),
        )
        .unwrap()
        .put(names::RESERVATION, put("RESERVATION#1"))
        .unwrap()
        .put(names::KEY, put("inventory#1"))
        .unwrap();
        tx
    }

    #[test]
    fn items_keep_their_order_and_their_names() {
        let tx = three_items();
        assert_eq!(tx.names(), ["stock:SKU-MUG", "reservation", "key"]);
        assert_eq!(tx.len(), 3);
        assert!(tx.items()[0].update().is_some());
        assert!(
            tx.items()[1]
                .put()
                .is_some_and(|p| p.item()["pk"] == AttributeValue::S("RESERVATION#1".into()))
        );
        assert!(!tx.is_empty() && Transaction::new().is_empty());
    }

    #[test]
    fn one_name_cannot_stand_for_two_items() {
        let mut tx = three_items();
        let twice = tx.put(names::KEY, put("inventory#2"));
        assert!(twice.is_err_and(|e| !e.is_transient()));
        assert_eq!(tx.len(), 3, "the refused item is not added");
    }

    #[test]
    fn a_cancellation_is_read_by_the_names_of_the_items() {
        let tx = three_items();
        let answer = cancelled(&["None", "ConditionalCheckFailed", "None"]);
        let c = tx.cancellation(&answer).unwrap();
        assert!(c.condition_failed(names::RESERVATION));
        assert!(!c.condition_failed("stock:SKU-MUG") && !c.condition_failed(names::KEY));
        assert_eq!(c.failed_conditions().collect::<Vec<_>>(), ["reservation"]);
        assert!(!c.is_contention());

        let short = tx
            .cancellation(&cancelled(&["ConditionalCheckFailed", "None", "None"]))
            .unwrap();
        assert!(short.condition_failed("stock:SKU-MUG"));

        let conflict = tx
            .cancellation(&cancelled(&["None", "None", "TransactionConflict"]))
            .unwrap();
        assert!(conflict.conflicted(names::KEY) && conflict.is_contention());
    }

    #[test]
    fn a_reason_past_the_last_name_is_named_by_its_position() {
        let tx = three_items();
        let c = tx
            .cancellation(&cancelled(&["None", "None", "None", "ValidationError"]))
            .unwrap();
        let error = c.into_error("t");
        assert!(error.to_string().contains("#3: ValidationError"), "{error}");
        assert!(!error.is_transient());
    }

    #[test]
    fn another_error_is_no_cancellation() {
        let tx = three_items();
        let throttled = SdkError::service_error(
            TransactWriteItemsError::generic(
                aws_sdk_dynamodb::error::ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .build(),
            ),
            HttpResponse::new(400.try_into().unwrap(), SdkBody::empty()),
        );
        assert!(tx.cancellation(&throttled).is_none());
    }

    #[test]
    fn names_are_spelled_once() {
        let id = EventId::new();
        assert_eq!(names::event(id), format!("event:{id}"));
        assert_eq!(
            names::stock(&Sku::parse("SKU-TEE").unwrap()),
            "stock:SKU-TEE"
        );
    }
}
