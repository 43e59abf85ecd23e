//! The audit: after a reliability run, check the invariants of "at-least-once delivery,
//! exactly-once effects" from the stores themselves, not from what the functions said.
//!
//! | invariant | read from |
//! |---|---|
//! | every accepted order is in a final state, and no other order exists | OrdersTable |
//! | stock never negative, and equal to the initial stock minus what confirmed orders took | InventoryTable |
//! | charges minus refunds equal the totals of the confirmed orders, order by order | PaymentsTable (the provider's ledger) |
//! | exactly one notification per notable event (see [`Expected::faults_injected`]) | CustomerNotificationsTopic, through a queue subscribed before the run |
//! | every message not processed is in a DLQ with its reason, and only those expected there | every DLQ |
//! | nothing anywhere else: no message left in a queue, no idempotency claim left in progress | the queues, IdempotencyTable |
//!
//! A run first waits (polling, with a deadline) until the pipeline is quiet, then audits
//! once. Each check says what it found, so a failed run names the broken invariant.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_adapters::tables::{self, ORDER_SK, SKU_PREFIX};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use domain::idempotency::IdempotencyStatus;
use domain::order::{Order, OrderStatus};
use serde_json::Value;

use emulator::provision::Stack;
use emulator::{ACCOUNT_ID, REGION};

/// The audit could not read a store (as opposed to: it read them and found a problem).
#[derive(Debug, thiserror::Error)]
#[error("audit: {0}")]
pub struct AuditError(String);

fn aws<E: std::fmt::Debug>(context: &'static str) -> impl FnOnce(E) -> AuditError {
    move |e| AuditError(format!("{context}: {e:?}"))
}

/// What the run did, which the stores must agree with.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The orders the API accepted (answered 201), by id.
    pub accepted: BTreeSet<String>,
    /// The stock before the run, by SKU.
    pub initial_stock: BTreeMap<String, i64>,
    /// How many messages the run sent that no consumer can process (hostile bodies): they,
    /// and only they, must end in a DLQ.
    pub dead_letters: usize,
    /// Whether AWS failed on purpose during the run. A publish whose completion record
    /// could not be written is repeated on retry (SNS has no conditional publish), so the
    /// customer may be sent the same notification twice, with the same event id for the
    /// receiver to drop it by. Only then are such repeats allowed; never a second
    /// notification with a different event id, and never a repeat on a calm run.
    pub faults_injected: bool,
}

/// One invariant and whether it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The invariant, as a sentence.
    pub invariant: &'static str,
    /// Whether it held.
    pub holds: bool,
    /// What was found (counts, or the first violations).
    pub detail: String,
}

/// The audit's findings.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Every invariant checked.
    pub checks: Vec<Check>,
    /// Accepted orders by final state.
    pub by_state: BTreeMap<String, usize>,
    /// Time from acceptance to the final state, per accepted order, in milliseconds
    /// (from the order's own `created_at` and `updated_at`).
    pub time_to_final_ms: Vec<i64>,
    /// From the first order's acceptance to the last final state, in milliseconds: the
    /// time the pipeline was busy with the run's orders.
    pub busy_ms: i64,
    /// The accepted orders that are missing or not final: what a failed run's trace
    /// follows through the logs.
    pub unfinished: Vec<String>,
}

impl Audit {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.holds)
    }

    /// The invariants that were broken, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|check| !check.holds)
            .map(|check| format!("{}: {}", check.invariant, check.detail))
            .collect()
    }
}

/// Where a run stands: see [`Stores::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Orders in a final state, counted by their final notification (confirmed,
    /// cancelled, payment failed): an order's last step, and readable from the watch
    /// queue without touching DynamoDB.
    pub final_orders: usize,
    /// Messages waiting or in flight in the consumer queues.
    pub queued: usize,
    /// Messages in the dead-letter queues.
    pub dead_letters: usize,
}

/// The stores the audit reads, and a queue that sees every customer notification.
pub struct Stores {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    orders: String,
    inventory: String,
    payments: String,
    idempotency: String,
    queues: Vec<(String, String)>,
    notifications: String,
    /// Notification bodies already taken off the watch queue.
    collected: Mutex<Vec<String>>,
}

const WATCH_QUEUE: &str = "audit-notifications-watch";

/// The notification `kind`s that end an order: confirmed, payment failed, cancelled.
const FINAL_NOTIFICATIONS: [&str; 3] = ["order_confirmed", "payment_failed", "order_cancelled"];

impl Stores {
    /// Finds the stores in the stack and subscribes a queue to the notifications topic.
    /// Call it before the run: notifications sent earlier are not seen.
    pub async fn watch(sdk: &SdkConfig, stack: &Stack) -> Result<Stores, AuditError> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let sns = aws_sdk_sns::Client::new(sdk);
        let table = |id: &str| {
            stack
                .table_name(id)
                .map(str::to_owned)
                .map_err(|e| AuditError(e.to_string()))
        };
        let notifications = sqs
            .create_queue()
            .queue_name(WATCH_QUEUE)
            .send()
            .await
            .map_err(aws("CreateQueue"))?
            .queue_url
            .unwrap_or_default();
        let topic = stack
            .topic_arn("CustomerNotificationsTopic")
            .map_err(|e| AuditError(e.to_string()))?;
        sns.subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{WATCH_QUEUE}"))
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .map_err(aws("Subscribe"))?;
        Ok(Stores {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs,
            orders: table("OrdersTable")?,
            inventory: table("InventoryTable")?,
            payments: table("PaymentsTable")?,
            idempotency: table("IdempotencyTable")?,
            queues: stack.queues(),
            notifications,
            collected: Mutex::new(Vec::new()),
        })
    }

    /// Sets the stock of each SKU (before the run).
    pub async fn seed_stock(&self, stock: &BTreeMap<String, i64>) -> Result<(), AuditError> {
        for (sku, units) in stock {
            self.dynamodb
                .put_item()
                .table_name(&self.inventory)
                .item("pk", AttributeValue::S(format!("{SKU_PREFIX}{sku}")))
                .item("stock", AttributeValue::N(units.to_string()))
                .send()
                .await
                .map_err(aws("PutItem stock"))?;
        }
        Ok(())
    }

    async fn scan(&self, table: &str) -> Result<Vec<HashMap<String, AttributeValue>>, AuditError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(aws("Scan"))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Every stored order.
    pub async fn orders(&self) -> Result<Vec<Order>, AuditError> {
        self.scan(&self.orders)
            .await?
            .into_iter()
            .filter(|item| text(item, "sk") == ORDER_SK)
            .map(|item| serde_dynamo::from_item(item).map_err(aws("decoding an order")))
            .collect()
    }

    /// How many orders are in a final state. A Scan with `Select: COUNT` returns no items,
    /// so the emulator filters the table without serialising it.
    async fn final_orders(&self) -> Result<usize, AuditError> {
        let mut scan = self
            .dynamodb
            .scan()
            .table_name(&self.orders)
            .select(Select::Count)
            .filter_expression("sk = :order AND #status IN (:final0, :final1, :final2)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":order", AttributeValue::S(ORDER_SK.into()));
        for (index, status) in FINAL.iter().enumerate() {
            let text = match serde_json::to_value(status) {
                Ok(Value::String(text)) => text,
                other => return Err(AuditError(format!("a status as text: {other:?}"))),
            };
            scan =
                scan.expression_attribute_values(format!(":final{index}"), AttributeValue::S(text));
        }
        let mut count = 0;
        let mut start = None;
        loop {
            let page = scan
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(aws("Scan COUNT"))?;
            count += usize::try_from(page.count).unwrap_or_default();
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    /// Messages waiting or in flight in the consumer queues (not the DLQs).
    async fn in_queues(&self) -> Result<usize, AuditError> {
        self.queued(false).await
    }

    /// Messages in the consumer queues (`dead_letter_queues: false`) or in the DLQs.
    async fn queued(&self, dead_letter_queues: bool) -> Result<usize, AuditError> {
        let mut total = 0;
        for (id, url) in &self.queues {
            if id.contains("DeadLetter") == dead_letter_queues {
                total += self.depth(url).await?;
            }
        }
        Ok(total)
    }

    /// Where a run stands, cheaply: for the heartbeat of long runs. Nothing here reads
    /// DynamoDB. Counting final orders in the orders table is a scan, and the emulator
    /// serves DynamoDB one request at a time: on a 10 000-order run one count took most
    /// of a minute, every function's DynamoDB calls waited behind it and timed out, and
    /// the run that was being reported on fell apart (messages dead-lettered after their
    /// retries, orders left half done). So final orders are counted from the
    /// notifications instead, on the SQS endpoint.
    pub async fn progress(&self) -> Result<Progress, AuditError> {
        self.collect_notifications().await?;
        let final_orders = {
            let collected = self
                .collected
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            collected
                .iter()
                .filter_map(|body| serde_json::from_str::<Value>(body).ok())
                .filter(|body| {
                    FINAL_NOTIFICATIONS.contains(&body["kind"].as_str().unwrap_or_default())
                })
                .filter_map(|body| body["order_id"].as_str().map(str::to_owned))
                .collect::<BTreeSet<String>>()
                .len()
        };
        Ok(Progress {
            final_orders,
            queued: self.queued(false).await?,
            dead_letters: self.queued(true).await?,
        })
    }

    async fn depth(&self, url: &str) -> Result<usize, AuditError> {
        let depth = lambda_host::queues::depth(&self.sqs, url)
            .await
            .map_err(aws("GetQueueAttributes"))?;
        Ok(usize::try_from(depth.total()).unwrap_or(usize::MAX))
    }

    /// Waits until every accepted order is final and every consumer queue has stayed
    /// empty for three polls in a row, or until `limit`. Returns whether it got quiet.
    pub async fn wait_until_quiet(
        &self,
        accepted: &BTreeSet<String>,
        limit: Duration,
    ) -> Result<bool, AuditError> {
        let deadline = Instant::now() + limit;
        let mut quiet_polls = 0;
        while Instant::now() < deadline {
            // Queue depths are cheap to read; reading every order is not (the emulator
            // spends more on serialising a table than on anything the pipeline asks of it,
            // which slowed the very orders being waited for). So: the queues first, then a
            // count of final orders, and the orders themselves only once the count is
            // complete.
            let quiet =
                self.in_queues().await? == 0 && self.final_orders().await? >= accepted.len() && {
                    let orders = self.orders().await?;
                    let finals = orders
                        .iter()
                        .filter(|o| {
                            accepted.contains(&o.order_id.to_string()) && is_final(o.status)
                        })
                        .count();
                    finals == accepted.len()
                };
            quiet_polls = if quiet { quiet_polls + 1 } else { 0 };
            if quiet_polls >= 3 {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(false)
    }

    /// Takes the notifications sent so far off the watch queue into memory. Call it now and
    /// then during a long run: the emulator scans a queue's messages on every receive and
    /// delete, so a queue holding thousands gets slow.
    pub async fn collect_notifications(&self) -> Result<(), AuditError> {
        let bodies: Vec<String> = self
            .drain(&self.notifications)
            .await?
            .into_iter()
            .filter_map(|message| message.body)
            .collect();
        self.collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(bodies);
        Ok(())
    }

    /// Receives every message of a queue, deleting them (the audit reads each once).
    async fn drain(&self, url: &str) -> Result<Vec<aws_sdk_sqs::types::Message>, AuditError> {
        let mut all = Vec::new();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(aws("ReceiveMessage"))?
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(all);
            }
            let entries: Vec<DeleteMessageBatchRequestEntry> = batch
                .iter()
                .enumerate()
                .filter_map(|(index, message)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(message.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            self.sqs
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(aws("DeleteMessageBatch"))?;
            all.extend(batch);
        }
    }

    /// Checks every invariant against the stores. Drains the notification watch queue and
    /// the DLQs, so audit once, after [`Stores::wait_until_quiet`].
    pub async fn audit(&self, expected: &Expected) -> Result<Audit, AuditError> {
        let orders = self.orders().await?;
        let mut audit = Audit::default();
        let accepted: Vec<&Order> = orders
            .iter()
            .filter(|o| expected.accepted.contains(&o.order_id.to_string()))
            .collect();

        // Orders.
        let stored: BTreeSet<String> = orders.iter().map(|o| o.order_id.to_string()).collect();
        let missing: Vec<&String> = expected.accepted.difference(&stored).collect();
        let stuck: Vec<&Order> = accepted
            .iter()
            .copied()
            .filter(|o| !is_final(o.status))
            .collect();
        let not_final: Vec<String> = stuck
            .iter()
            .map(|o| format!("{} {}", o.order_id, o.status.as_str()))
            .collect();
        audit.unfinished = missing
            .iter()
            .map(|id| (*id).clone())
            .chain(stuck.iter().map(|o| o.order_id.to_string()))
            .collect();
        audit.checks.push(Check {
            invariant: "every accepted order is in a final state",
            holds: missing.is_empty() && not_final.is_empty(),
            detail: format!(
                "{} accepted; missing {}; not final {}",
                expected.accepted.len(),
                first(&missing),
                first(&not_final)
            ),
        });
        let strangers: Vec<&String> = stored.difference(&expected.accepted).collect();
        audit.checks.push(Check {
            invariant: "no order exists that the API did not accept",
            holds: strangers.is_empty(),
            detail: format!("{} unknown: {}", strangers.len(), first(&strangers)),
        });
        for order in &accepted {
            *audit
                .by_state
                .entry(order.status.as_str().to_owned())
                .or_default() += 1;
            if is_final(order.status) {
                audit
                    .time_to_final_ms
                    .push((order.updated_at - order.created_at).num_milliseconds());
            }
        }
        audit.time_to_final_ms.sort_unstable();
        if let (Some(first), Some(last)) = (
            accepted.iter().map(|o| o.created_at).min(),
            accepted.iter().map(|o| o.updated_at).max(),
        ) {
            audit.busy_ms = (last - first).num_milliseconds();
        }

        audit.checks.push(self.stock(expected, &accepted).await?);
        audit.checks.push(self.money(&accepted).await?);
        audit.checks.push(
            self.notifications(&accepted, expected.faults_injected)
                .await?,
        );
        audit.checks.push(self.dead_letters(expected).await?);
        audit.checks.push(self.leftovers().await?);
        Ok(audit)
    }

    async fn stock(&self, expected: &Expected, accepted: &[&Order]) -> Result<Check, AuditError> {
        let mut want = expected.initial_stock.clone();
        for order in accepted
            .iter()
            .filter(|o| o.status == OrderStatus::Confirmed)
        {
            for line in &order.items {
                *want.entry(line.sku.as_str().to_owned()).or_default() -=
                    i64::from(line.quantity.get());
            }
        }
        let have: BTreeMap<String, i64> = self
            .scan(&self.inventory)
            .await?
            .iter()
            .filter_map(|item| {
                let sku = text(item, "pk").strip_prefix(SKU_PREFIX)?.to_owned();
                Some((sku, number(item, "stock")))
            })
            .collect();
        let wrong: Vec<String> = want
            .iter()
            .filter(|(sku, units)| have.get(*sku) != Some(units) || **units < 0)
            .map(|(sku, units)| format!("{sku}: stored {:?}, expected {units}", have.get(sku)))
            .collect();
        let negative = have.values().filter(|units| **units < 0).count();
        Ok(Check {
            invariant: "stock is never negative and equals the initial stock minus confirmed quantities",
            holds: wrong.is_empty() && negative == 0,
            detail: format!(
                "{} SKUs; {} negative; wrong {}",
                have.len(),
                negative,
                first(&wrong)
            ),
        })
    }

    async fn money(&self, accepted: &[&Order]) -> Result<Check, AuditError> {
        let ledger = self.scan(&self.payments).await?;
        let mut charged: BTreeMap<String, i64> = BTreeMap::new();
        let mut refunded: BTreeMap<String, i64> = BTreeMap::new();
        for entry in &ledger {
            let pk = text(entry, "pk");
            match tables::ledger_entry_order(&pk) {
                Some((order, true)) if text(entry, "status") == "APPROVED" => {
                    *charged.entry(order.to_owned()).or_default() += number(entry, "amount_minor");
                }
                Some((order, false)) => {
                    *refunded.entry(order.to_owned()).or_default() += number(entry, "amount_minor");
                }
                _ => {}
            }
        }
        let mut wrong = Vec::new();
        let mut confirmed_total = 0;
        for order in accepted {
            let id = order.order_id.to_string();
            let total = i64::try_from(order.total.amount_minor).unwrap_or(i64::MAX);
            let kept = charged.get(&id).copied().unwrap_or_default()
                - refunded.get(&id).copied().unwrap_or_default();
            let should_keep = if order.status == OrderStatus::Confirmed {
                confirmed_total += total;
                total
            } else {
                0
            };
            if kept != should_keep {
                wrong.push(format!(
                    "{id} {}: kept {kept}, expected {should_keep}",
                    order.status.as_str()
                ));
            }
        }
        let net: i64 = charged.values().sum::<i64>() - refunded.values().sum::<i64>();
        Ok(Check {
            invariant: "charges minus refunds equal the totals of confirmed orders",
            holds: wrong.is_empty() && net == confirmed_total,
            detail: format!(
                "{} charges, {} refunds, net {net}, confirmed totals {confirmed_total}; wrong {}",
                charged.len(),
                refunded.len(),
                first(&wrong)
            ),
        })
    }

    async fn notifications(
        &self,
        accepted: &[&Order],
        faults_injected: bool,
    ) -> Result<Check, AuditError> {
        // Per (order, kind): the distinct event ids notified about, and how many publishes.
        let mut event_ids: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        let mut publishes = 0;
        self.collect_notifications().await?;
        let bodies = std::mem::take(
            &mut *self
                .collected
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for body in &bodies {
            let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let key = (
                body["order_id"].as_str().unwrap_or_default().to_owned(),
                body["kind"].as_str().unwrap_or_default().to_owned(),
            );
            publishes += 1;
            event_ids
                .entry(key)
                .or_default()
                .insert(body["event_id"].as_str().unwrap_or_default().to_owned());
        }
        let sent: BTreeMap<(String, String), usize> = event_ids
            .iter()
            .map(|(key, ids)| (key.clone(), ids.len()))
            .collect();
        let repeats = publishes - sent.values().sum::<usize>();
        let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
        for order in accepted {
            let id = order.order_id.to_string();
            expected.insert((id.clone(), "order_received".into()), 1);
            let last = match order.status {
                OrderStatus::Confirmed => FINAL_NOTIFICATIONS[0],
                OrderStatus::PaymentFailed => FINAL_NOTIFICATIONS[1],
                OrderStatus::Cancelled => FINAL_NOTIFICATIONS[2],
                OrderStatus::Pending | OrderStatus::Paid => continue,
            };
            expected.insert((id, last.into()), 1);
        }
        let wrong: Vec<String> = expected
            .keys()
            .chain(sent.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|key| expected.get(*key) != sent.get(*key))
            .map(|(order, kind)| {
                format!(
                    "{order} {kind}: sent {}",
                    sent.get(&(order.clone(), kind.clone())).unwrap_or(&0)
                )
            })
            .collect();
        Ok(Check {
            invariant: "exactly one notification per notable event",
            holds: wrong.is_empty() && (repeats == 0 || faults_injected),
            detail: format!(
                "{} sent, {} expected; wrong {}; repeated publishes of one event {repeats}{}",
                sent.values().sum::<usize>(),
                expected.len(),
                first(&wrong),
                if faults_injected {
                    " (allowed under injected faults: same event id, dropped by the receiver)"
                } else {
                    ""
                }
            ),
        })
    }

    async fn dead_letters(&self, expected: &Expected) -> Result<Check, AuditError> {
        let mut count = 0;
        let mut without_reason = Vec::new();
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (id, url) in &self.queues {
            if !id.contains("DeadLetter") {
                continue;
            }
            for message in self.drain(url).await? {
                count += 1;
                match message
                    .message_attributes()
                    .and_then(|a| a.get("dead_letter_reason"))
                    .and_then(|v| v.string_value())
                {
                    Some(reason) => {
                        let gist: String = reason.chars().take(60).collect();
                        *reasons.entry(format!("{id}: {gist}")).or_default() += 1;
                    }
                    None => without_reason.push(format!(
                        "{id}: {}",
                        message.message_id().unwrap_or_default()
                    )),
                }
            }
        }
        Ok(Check {
            invariant: "every message not processed is in a DLQ with its reason, and only those",
            holds: count == expected.dead_letters && without_reason.is_empty(),
            detail: format!(
                "{count} dead letters, {} expected; without a reason (retries used up) {}; reasons {reasons:?}",
                expected.dead_letters,
                first(&without_reason)
            ),
        })
    }

    async fn leftovers(&self) -> Result<Check, AuditError> {
        let in_queues = self.in_queues().await?;
        let claims = self
            .scan(&self.idempotency)
            .await?
            .iter()
            .filter(|item| {
                aws_adapters::record_from_item((*item).clone())
                    .is_ok_and(|record| record.status == IdempotencyStatus::InProgress)
            })
            .count();
        Ok(Check {
            invariant: "nothing anywhere else: queues empty, no claim left in progress",
            holds: in_queues == 0 && claims == 0,
            detail: format!("{in_queues} messages in queues, {claims} claims in progress"),
        })
    }
}

/// The states an order ends in.
const FINAL: [OrderStatus; 3] = [
    OrderStatus::Confirmed,
    OrderStatus::PaymentFailed,
    OrderStatus::Cancelled,
];

fn is_final(status: OrderStatus) -> bool {
    FINAL.contains(&status)
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

/// "none", or the first few items and how many there are.
fn first<T: std::fmt::Display>(items: &[T]) -> String {
    match items.len() {
        0 => "none".into(),
        n => {
            let shown: Vec<String> = items.iter().take(3).map(ToString::to_string).collect();
            if n > 3 {
                format!("{} (and {} more)", shown.join(", "), n - 3)
            } else {
                shown.join(", ")
            }
        }
    }
}
