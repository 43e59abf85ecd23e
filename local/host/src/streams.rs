//! Lambda's DynamoDB stream event source mapping, emulated.
//!
//! Like Lambda, per shard and in order: read records, drop those the `FilterCriteria`
//! rejects, invoke the function with up to `BatchSize` of them in Lambda's event shape,
//! and checkpoint. A failed batch is retried from the first failed record (with
//! `ReportBatchItemFailures`) or whole, halved when `BisectBatchOnFunctionError` is on;
//! after `MaximumRetryAttempts` the failed records' coordinates go to the on-failure SQS
//! destination and the shard moves on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::{Value, json};

use crate::invoke::Invoke;
use emulator::REGION;
use emulator::filter;
use emulator::provision::StreamMapping;

/// Reading the stream or writing the failure destination failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A DynamoDB Streams or SQS call failed.
    #[error("{operation} failed: {message}")]
    Aws {
        /// The API call.
        operation: &'static str,
        /// The SDK's error.
        message: String,
    },
    /// `run_until_idle` ran out of time with work left.
    #[error("stream not drained before the deadline: {0:?}")]
    Deadline(PollReport),
}

fn aws<E: std::fmt::Debug>(operation: &'static str) -> impl FnOnce(E) -> StreamError {
    move |e| StreamError::Aws {
        operation,
        message: format!("{e:?}"),
    }
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Records passed to the function.
    pub delivered: usize,
    /// Records the function handled.
    pub succeeded: usize,
    /// Records that failed and wait for a retry.
    pub pending_retry: usize,
    /// Records given up on and reported to the failure destination.
    pub sent_to_failure_destination: usize,
    /// Records the filter criteria dropped.
    pub filtered_out: usize,
}

#[derive(Debug, Default)]
struct Shard {
    iterator: Option<String>,
    /// Read and filtered, not yet checkpointed; the front is the next to deliver.
    buffer: VecDeque<Value>,
    /// Failed attempts of the batch at the front.
    attempts: u32,
    /// Batch size limit after bisection.
    limit: Option<usize>,
}

/// Polls one stream for one mapping.
pub struct StreamPoller {
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    mapping: StreamMapping,
    shards: BTreeMap<String, Shard>,
}

impl StreamPoller {
    /// A poller for `mapping` through the emulator (or AWS) `config` points at.
    pub fn new(config: &SdkConfig, mapping: StreamMapping) -> Self {
        Self {
            streams: aws_sdk_dynamodbstreams::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            mapping,
            shards: BTreeMap::new(),
        }
    }

    /// The mapping this poller serves.
    pub fn mapping(&self) -> &StreamMapping {
        &self.mapping
    }

    async fn refresh_shards(&mut self) -> Result<(), StreamError> {
        let description = self
            .streams
            .describe_stream()
            .stream_arn(&self.mapping.stream_arn)
            .send()
            .await
            .map_err(aws("DescribeStream"))?;
        let shard_ids: Vec<String> = description
            .stream_description
            .map(|d| d.shards.unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.shard_id)
            .collect();
        for shard_id in shard_ids {
            if self.shards.contains_key(&shard_id) {
                continue;
            }
            let position = if self.mapping.starting_position == "TRIM_HORIZON" {
                ShardIteratorType::TrimHorizon
            } else {
                ShardIteratorType::Latest
            };
            let iterator = self
                .streams
                .get_shard_iterator()
                .stream_arn(&self.mapping.stream_arn)
                .shard_id(&shard_id)
                .shard_iterator_type(position)
                .send()
                .await
                .map_err(aws("GetShardIterator"))?
                .shard_iterator;
            self.shards.insert(
                shard_id,
                Shard {
                    iterator,
                    ..Shard::default()
                },
            );
        }
        Ok(())
    }

    /// Reads what is new, then delivers at most one batch per shard.
    pub async fn poll_once(&mut self, function: &dyn Invoke) -> Result<PollReport, StreamError> {
        self.refresh_shards().await?;
        let mut report = PollReport::default();
        let shard_ids: Vec<String> = self.shards.keys().cloned().collect();
        for shard_id in shard_ids {
            self.read(&shard_id, &mut report).await?;
            self.deliver(&shard_id, function, &mut report).await?;
        }
        Ok(report)
    }

    async fn read(&mut self, shard_id: &str, report: &mut PollReport) -> Result<(), StreamError> {
        let Some(shard) = self.shards.get_mut(shard_id) else {
            return Ok(());
        };
        let Some(iterator) = shard.iterator.clone() else {
            return Ok(());
        };
        let output = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .map_err(aws("GetRecords"))?;
        shard.iterator = output.next_shard_iterator;
        for record in output.records.unwrap_or_default() {
            let event = lambda_record(&record, &self.mapping.stream_arn);
            if filter::passes(&self.mapping.filters, &event) {
                shard.buffer.push_back(event);
            } else {
                report.filtered_out += 1;
            }
        }
        Ok(())
    }

    async fn deliver(
        &mut self,
        shard_id: &str,
        function: &dyn Invoke,
        report: &mut PollReport,
    ) -> Result<(), StreamError> {
        let Some(shard) = self.shards.get_mut(shard_id) else {
            return Ok(());
        };
        let size = shard
            .limit
            .unwrap_or(self.mapping.batch_size)
            .min(shard.buffer.len());
        if size == 0 {
            return Ok(());
        }
        let batch: Vec<Value> = shard.buffer.iter().take(size).cloned().collect();
        report.delivered += batch.len();
        let outcome = function.invoke(json!({ "Records": batch })).await;
        // How many records at the front of the batch succeeded.
        let succeeded = match &outcome {
            Ok(response) if self.mapping.report_batch_item_failures => {
                first_failure(response, &batch).unwrap_or(batch.len())
            }
            Ok(_) => batch.len(),
            Err(_) => 0,
        };
        shard.buffer.drain(..succeeded);
        report.succeeded += succeeded;
        if succeeded == batch.len() {
            shard.attempts = 0;
            shard.limit = None;
            return Ok(());
        }
        shard.attempts += 1;
        if outcome.is_err() && self.mapping.bisect_on_error && batch.len() > 1 {
            shard.limit = Some(batch.len().div_ceil(2));
        }
        let exhausted = self
            .mapping
            .maximum_retry_attempts
            .is_some_and(|max| shard.attempts > max);
        let failed = &batch[succeeded..];
        if !exhausted {
            report.pending_retry += failed.len();
            return Ok(());
        }
        // Give up on the failed records: report them, like Lambda's on-failure
        // destination, and move the checkpoint past them.
        let attempts = shard.attempts;
        shard.buffer.drain(..failed.len());
        shard.attempts = 0;
        shard.limit = None;
        report.sent_to_failure_destination += failed.len();
        if let Some(queue_url) = &self.mapping.on_failure_queue_url {
            let message = failure_record(&self.mapping, shard_id, failed, attempts, &outcome);
            self.sqs
                .send_message()
                .queue_url(queue_url)
                .message_body(message.to_string())
                .send()
                .await
                .map_err(aws("SendMessage"))?;
        }
        Ok(())
    }

    /// Polls until nothing is left to deliver or retry; between retries it backs off a
    /// little, like Lambda does.
    pub async fn run_until_idle(
        &mut self,
        function: &dyn Invoke,
        deadline: Instant,
    ) -> Result<PollReport, StreamError> {
        let mut total = PollReport::default();
        loop {
            let report = self.poll_once(function).await?;
            total.delivered += report.delivered;
            total.succeeded += report.succeeded;
            total.sent_to_failure_destination += report.sent_to_failure_destination;
            total.filtered_out += report.filtered_out;
            total.pending_retry = report.pending_retry;
            let idle = report.delivered == 0
                && report.filtered_out == 0
                && self.shards.values().all(|s| s.buffer.is_empty());
            if idle {
                return Ok(total);
            }
            if Instant::now() >= deadline {
                return Err(StreamError::Deadline(total));
            }
            if report.pending_retry > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Index of the first record the function reported as failed. An identifier that names
/// no record of the batch fails the whole batch, as in Lambda.
fn first_failure(response: &Value, batch: &[Value]) -> Option<usize> {
    let failures = response.get("batchItemFailures")?.as_array()?;
    failures
        .iter()
        .map(|failure| {
            let id = failure.get("itemIdentifier").and_then(Value::as_str);
            batch
                .iter()
                .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == id)
                .unwrap_or(0)
        })
        .min()
}

/// The record as Lambda puts it in a DynamoDB stream event.
fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let change = record.dynamodb.as_ref();
    let image = |map: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        map.map(|m| {
            let item: HashMap<String, serde_dynamo::AttributeValue> = m
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            serde_json::to_value(serde_dynamo::Item::from(item)).unwrap_or(Value::Null)
        })
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change
            .and_then(|c| c.approximate_creation_date_time)
            .map(|t| t.secs())
            .unwrap_or_default(),
        "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
        "SizeBytes": change.and_then(|c| c.size_bytes).unwrap_or_default(),
        "StreamViewType": change.and_then(|c| c.stream_view_type.as_ref()).map(|v| v.as_str()),
    });
    for (field, value) in [
        ("Keys", image(change.and_then(|c| c.keys.as_ref()))),
        ("NewImage", image(change.and_then(|c| c.new_image.as_ref()))),
        ("OldImage", image(change.and_then(|c| c.old_image.as_ref()))),
    ] {
        if let Some(value) = value {
            dynamodb[field] = value;
        }
    }
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": record.event_version.clone().unwrap_or("1.1".into()),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region.clone().unwrap_or(REGION.into()),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

/// What Lambda sends to an on-failure destination for a stream batch.
fn failure_record(
    mapping: &StreamMapping,
    shard_id: &str,
    failed: &[Value],
    attempts: u32,
    outcome: &Result<Value, crate::invoke::InvokeError>,
) -> Value {
    let sequence = |r: Option<&Value>| {
        r.and_then(|r| r["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned))
    };
    json!({
        "requestContext": {
            "requestId": format!("local-{shard_id}-{}", sequence(failed.first()).unwrap_or_default()),
            "functionArn": format!("arn:aws:lambda:{REGION}:{}:function:{}", emulator::ACCOUNT_ID, mapping.function),
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": attempts,
        },
        "responseContext": {
            "statusCode": 200,
            "functionError": if outcome.is_err() { "Unhandled" } else { "" },
        },
        "version": "1.0",
        "timestamp": chrono_like_now(),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": sequence(failed.first()),
            "endSequenceNumber": sequence(failed.last()),
            "approximateArrivalOfFirstRecord": failed.first().map(|r| r["dynamodb"]["ApproximateCreationDateTime"].clone()),
            "approximateArrivalOfLastRecord": failed.last().map(|r| r["dynamodb"]["ApproximateCreationDateTime"].clone()),
            "batchSize": failed.len(),
            "streamArn": mapping.stream_arn,
        }
    })
}

/// Seconds since the epoch, for the failure record's timestamp.
fn chrono_like_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
