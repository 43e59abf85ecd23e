//! [`IdempotencyStore`] on a DynamoDB table laid out as Powertools for AWS Lambda lays it
//! out: partition key `id`, TTL on `expiration` (see [`IdempotencyRecord`]).

use domain::failure::Failure;
use std::collections::HashMap;
use tracing::Instrument;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure};

use domain::idempotency::{IdempotencyRecord, IdempotencyStore, PutIfAbsent};

/// Idempotency records in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbIdempotencyStore {
    client: Client,
    table: String,
}

/// Condition under which a new record may take a key: no record, an expired one, or an
/// abandoned claim; Powertools' own condition, so a Python or TypeScript function sharing
/// the table agrees on who holds a key. DynamoDB evaluates it atomically with the write,
/// which is what makes two concurrent claims impossible.
const KEY_IS_FREE: &str = "attribute_not_exists(id) OR expiration <= :now \
     OR (#status = :inprogress AND in_progress_expiration <= :now_in_millis)";

/// The status a claim is stored with, as [`domain::idempotency::IdempotencyStatus`]
/// serialises it.
const INPROGRESS: &str = "INPROGRESS";

impl DynamoDbIdempotencyStore {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The conditional put that takes a key, for composing into a transaction with the
    /// effect itself (see [`domain::ports::OrderStore::place`]). A refusal carries the
    /// record that holds the key (`ALL_OLD`): the caller judges it without reading it.
    pub fn put_if_absent_request(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> Result<Put, Failure> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?))
            .condition_expression(KEY_IS_FREE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", AttributeValue::N(now_epoch.to_string()))
            .expression_attribute_values(
                ":now_in_millis",
                AttributeValue::N(now_epoch.saturating_mul(1000).to_string()),
            )
            .expression_attribute_values(":inprogress", AttributeValue::S(INPROGRESS.into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| Failure::Permanent(format!("building idempotency put: {e}")))
    }
}

fn to_item(record: &IdempotencyRecord) -> Result<HashMap<String, AttributeValue>, Failure> {
    serde_dynamo::to_item(record)
        .map_err(|e| Failure::Permanent(format!("encoding idempotency record: {e}")))
}

/// The record in an item DynamoDB returned: a `GetItem`'s, or the `ALL_OLD` image of a
/// refused put (here or inside a cancelled transaction).
pub fn record_from_item(
    item: HashMap<String, AttributeValue>,
) -> Result<IdempotencyRecord, Failure> {
    serde_dynamo::from_item(item)
        .map_err(|e| Failure::Permanent(format!("decoding idempotency record: {e}")))
}

impl IdempotencyStore for DynamoDbIdempotencyStore {
    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, Failure> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.GetItem"))
            .await
            .map_err(|e| crate::sdk::failure("GetItem idempotency", &e))?;
        output.item.map(record_from_item).transpose()
    }

    async fn put_if_absent(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> Result<PutIfAbsent, Failure> {
        let put = self.put_if_absent_request(record, now_epoch)?;
        let result = self
            .client
            .put_item()
            .table_name(put.table_name)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
            .set_return_values_on_condition_check_failure(
                put.return_values_on_condition_check_failure,
            )
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.PutItem"))
            .await;
        match result {
            Ok(_) => Ok(PutIfAbsent::Written),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                    match refused.item() {
                        Some(item) => Ok(PutIfAbsent::Live(record_from_item(item.clone())?)),
                        // A condition with attribute_not_exists(id) fails only on an
                        // existing item, whose image ALL_OLD returns; without it there is
                        // nothing to judge, so the caller tries again.
                        None => Err(Failure::Transient(format!(
                            "idempotency key {} was refused without its record",
                            record.id
                        ))),
                    }
                }
                _ => Err(crate::sdk::failure("PutItem idempotency", &e)),
            },
        }
    }

    async fn complete(
        &self,
        claimed: &IdempotencyRecord,
        done: &IdempotencyRecord,
    ) -> Result<(), Failure> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(done)?))
            .condition_expression(HELD_BY_OWNER)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":inprogress", AttributeValue::S(INPROGRESS.into()))
            .expression_attribute_values(":owner", owner_of(claimed)?)
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.PutItem"))
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(Failure::Transient(format!(
                    "idempotency key {} was claimed again after our claim lapsed; a retry will find what that claimant stores",
                    done.id
                )))
            }
            Err(e) => Err(crate::sdk::failure("PutItem idempotency (complete)", &e)),
        }
    }

    async fn release(&self, claimed: &IdempotencyRecord) -> Result<(), Failure> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(claimed.id.clone()))
            .condition_expression(HELD_BY_OWNER)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":inprogress", AttributeValue::S(INPROGRESS.into()))
            .expression_attribute_values(":owner", owner_of(claimed)?)
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.DeleteItem"))
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    // Gone, completed, or claimed by someone else since: not ours to delete.
                    Ok(())
                } else {
                    Err(crate::sdk::failure("DeleteItem idempotency", &e))
                }
            })
    }
}

/// Condition under which a claim may complete or release a key: the record is still in
/// progress under the claim's own owner token.
const HELD_BY_OWNER: &str = "#status = :inprogress AND #owner = :owner";

/// The claim's owner token as a condition value.
fn owner_of(claimed: &IdempotencyRecord) -> Result<AttributeValue, Failure> {
    claimed
        .owner
        .clone()
        .map(AttributeValue::S)
        .ok_or_else(|| Failure::Permanent(format!("the claim on {} has no owner", claimed.id)))
}
