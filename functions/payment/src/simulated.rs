//! A simulated payment provider with deterministic rules, so every path of the saga can
//! be exercised on purpose:
//!
//! | token / amount                    | result                                              |
//! |-----------------------------------|-----------------------------------------------------|
//! | `tok_decline`                     | declined: "card declined"                           |
//! | amount over [`CARD_LIMIT_MINOR`]  | declined: "amount exceeds the card limit"           |
//! | `tok_flaky_<n>` (n = 1..=9)       | fails transiently `n` times per key, then approves |
//! | anything else                     | approved                                            |
//!
//! Like a real provider it is idempotent per key, and it keeps a ledger (the payments
//! table) of every charge and refund, which is also what audits count. It checks the API
//! key it was built with, as a real provider would.

use domain::failure::Failure;
use std::collections::HashMap;
use tracing::Instrument;

use aws_adapters::tables::{attempts_pk, charge_entry_pk, refund_entry_pk};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use domain::money::Money;

use domain::ports::{Charge, ChargeOutcome, PaymentGateway, Refund};

/// Charges above this many minor units are declined (1 000.00).
pub const CARD_LIMIT_MINOR: u64 = 100_000;

/// The token that is always declined.
pub const DECLINE_TOKEN: &str = "tok_decline";

/// The prefix of tokens that fail transiently a few times first.
pub const FLAKY_TOKEN_PREFIX: &str = "tok_flaky_";

/// The simulated provider over its ledger table.
#[derive(Clone)]
pub struct SimulatedGateway {
    client: Client,
    table: String,
    api_key: String,
}

impl std::fmt::Debug for SimulatedGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key is a secret: never in debug output or logs.
        f.debug_struct("SimulatedGateway")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl SimulatedGateway {
    /// The provider, authenticating with `api_key`, keeping its ledger in `table`.
    pub fn new(client: Client, table: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            api_key: api_key.into(),
        }
    }

    fn authenticate(&self) -> Result<(), Failure> {
        if self.api_key.trim().len() < 16 {
            return Err(Failure::Permanent("invalid API key".into()));
        }
        Ok(())
    }

    /// Writes a ledger entry unless one exists; returns the entry that stands. One
    /// request either way: a refused put hands back the stored entry (`ALL_OLD`), so a
    /// repeated key is answered as the first time without a read before the write.
    async fn ledger_put(
        &self,
        item: HashMap<String, AttributeValue>,
    ) -> Result<HashMap<String, AttributeValue>, Failure> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .instrument(aws_adapters::sdk::call_span("DynamoDB.PutItem"))
            .await;
        match result {
            Ok(_) => Ok(item),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => refused
                    .item()
                    .cloned()
                    .ok_or_else(|| Failure::Transient("ledger entry refused without it".into())),
                _ => Err(aws_adapters::sdk::failure("PutItem ledger", &e)),
            },
        }
    }

    /// Counts attempts per key, for the flaky tokens.
    async fn attempt(&self, key: &str) -> Result<u64, Failure> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(attempts_pk(key)))
            .update_expression("ADD attempts :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .instrument(aws_adapters::sdk::call_span("DynamoDB.UpdateItem"))
            .await
            .map_err(|e| aws_adapters::sdk::failure("UpdateItem attempts", &e))?;
        Ok(output
            .attributes
            .and_then(|a| a.get("attempts").and_then(|n| n.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1))
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

impl PaymentGateway for SimulatedGateway {
    async fn charge(
        &self,
        idempotency_key: &str,
        amount: Money,
        token: &str,
    ) -> Result<ChargeOutcome, Failure> {
        self.authenticate()?;
        let pk = charge_entry_pk(idempotency_key);
        // A flaky token fails its first tries per key. Once a charge stands, the count is
        // past them, so a repeat reaches the ledger and gets that charge back.
        if let Some(failures) = token
            .strip_prefix(FLAKY_TOKEN_PREFIX)
            .and_then(|n| n.parse::<u64>().ok())
            && self.attempt(idempotency_key).await? <= failures
        {
            return Err(Failure::Transient("simulated provider timeout".into()));
        }
        let decline = if token == DECLINE_TOKEN {
            Some("card declined")
        } else if amount.amount_minor > CARD_LIMIT_MINOR {
            Some("amount exceeds the card limit")
        } else {
            None
        };
        let mut item = HashMap::from([
            ("pk".to_owned(), s(&pk)),
            ("kind".to_owned(), s("charge")),
            (
                "amount_minor".to_owned(),
                AttributeValue::N(amount.amount_minor.to_string()),
            ),
            ("currency".to_owned(), s(amount.currency.code())),
        ]);
        match decline {
            Some(reason) => {
                item.insert("status".into(), s("DECLINED"));
                item.insert("reason".into(), s(reason));
            }
            None => {
                item.insert("status".into(), s("APPROVED"));
                item.insert(
                    "charge_id".into(),
                    s(format!("ch_{}", uuid::Uuid::new_v4().simple())),
                );
            }
        }
        // The entry that stands: this one, or the first charge under this key.
        let entry = self.ledger_put(item).await?;
        Ok(match text(&entry, "status").as_str() {
            "APPROVED" => ChargeOutcome::Approved(Charge {
                charge_id: text(&entry, "charge_id"),
            }),
            _ => ChargeOutcome::Declined {
                reason: text(&entry, "reason"),
            },
        })
    }

    async fn refund(
        &self,
        idempotency_key: &str,
        charge_id: &str,
        amount: Money,
    ) -> Result<Refund, Failure> {
        self.authenticate()?;
        let pk = refund_entry_pk(idempotency_key);
        let entry = self
            .ledger_put(HashMap::from([
                ("pk".to_owned(), s(&pk)),
                ("kind".to_owned(), s("refund")),
                ("charge_id".to_owned(), s(charge_id)),
                (
                    "refund_id".to_owned(),
                    s(format!("re_{}", uuid::Uuid::new_v4().simple())),
                ),
                (
                    "amount_minor".to_owned(),
                    AttributeValue::N(amount.amount_minor.to_string()),
                ),
                ("currency".to_owned(), s(amount.currency.code())),
            ]))
            .await?;
        Ok(Refund {
            refund_id: text(&entry, "refund_id"),
        })
    }
}
