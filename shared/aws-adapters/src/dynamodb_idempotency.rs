//! [`IdempotencyStore`] on a DynamoDB table keyed by `pk` with TTL on `expires_at`.

use domain::failure::Failure;
use std::collections::HashMap;
use tracing::Instrument;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put};

use domain::idempotency::IdempotencyRecord;
use domain::idempotency::IdempotencyStore;

/// Idempotency records in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbIdempotencyStore {
    client: Client,
    table: String,
}

/// Condition under which a new record may take a key: no record, an expired one, or an
/// abandoned claim. DynamoDB evaluates it atomically with the write, which is what makes
/// two concurrent claims impossible.
const KEY_IS_FREE: &str = "attribute_not_exists(pk) OR expires_at <= :now \
     OR (#status = :in_progress AND in_progress_until <= :now)";

impl DynamoDbIdempotencyStore {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The conditional put that takes a key, for composing into a transaction with the
    /// effect itself (see [`domain::ports::OrderStore::place`]).
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
            .expression_attribute_values(":in_progress", AttributeValue::S("IN_PROGRESS".into()))
            .build()
            .map_err(|e| Failure::Permanent(format!("building idempotency put: {e}")))
    }
}

fn to_item(record: &IdempotencyRecord) -> Result<HashMap<String, AttributeValue>, Failure> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(record)
        .map_err(|e| Failure::Permanent(format!("encoding idempotency record: {e}")))?;
    if let Some(key) = item.remove("key") {
        item.insert("pk".into(), key);
    }
    Ok(item)
}

fn from_item(mut item: HashMap<String, AttributeValue>) -> Result<IdempotencyRecord, Failure> {
    if let Some(key) = item.remove("pk") {
        item.insert("key".into(), key);
    }
    serde_dynamo::from_item(item)
        .map_err(|e| Failure::Permanent(format!("decoding idempotency record: {e}")))
}

impl IdempotencyStore for DynamoDbIdempotencyStore {
    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, Failure> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.GetItem"))
            .await
            .map_err(|e| crate::sdk::failure("GetItem idempotency", &e))?;
        output.item.map(from_item).transpose()
    }

    async fn put_if_absent(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> Result<bool, Failure> {
        let put = self.put_if_absent_request(record, now_epoch)?;
        let result = self
            .client
            .put_item()
            .table_name(put.table_name)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
            .send()
            .instrument(crate::sdk::call_span("DynamoDB.PutItem"))
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(crate::sdk::failure("PutItem idempotency", &e)),
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
            .expression_attribute_values(":in_progress", AttributeValue::S("IN_PROGRESS".into()))
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
                    done.key
                )))
            }
            Err(e) => Err(crate::sdk::failure("PutItem idempotency (complete)", &e)),
        }
    }

    async fn release(&self, claimed: &IdempotencyRecord) -> Result<(), Failure> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(claimed.key.clone()))
            .condition_expression(HELD_BY_OWNER)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", AttributeValue::S("IN_PROGRESS".into()))
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
const HELD_BY_OWNER: &str = "#status = :in_progress AND #owner = :owner";

/// The claim's owner token as a condition value.
fn owner_of(claimed: &IdempotencyRecord) -> Result<AttributeValue, Failure> {
    claimed
        .owner
        .clone()
        .map(AttributeValue::S)
        .ok_or_else(|| Failure::Permanent(format!("the claim on {} has no owner", claimed.key)))
}
