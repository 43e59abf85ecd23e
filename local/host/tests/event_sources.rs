//! Lambda's event sources, emulated: the stream mapping's batching, partial failures,
//! retries and failure destination; the SQS mapping's filters, deletes, visibility
//! timeout and dead-lettering.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use emulator::Emulator;
use emulator::provision::provision;
use emulator::template::Template;
use lambda_host::invoke::{InvokeError, from_fn};
use lambda_host::queues::Redelivery;
use lambda_host::streams::StreamPoller;
use serde_json::{Value, json};

mod support;

use support::{depth, depth_reaches};

const DEADLINE: Duration = Duration::from_secs(30);

const STREAM_TEMPLATE: &str = include_str!("../../emulator/tests/templates/stream.yaml");

/// A template the project does not have: a new queue with a DLQ, subscribed to a topic
/// with a filter, consumed by a new function. Nothing in local/ names any of it.
const FANOUT_TEMPLATE: &str = include_str!("../../emulator/tests/templates/fanout.yaml");

struct Setup {
    sdk: aws_config::SdkConfig,
    _emulator: Emulator,
    poller: StreamPoller,
    sqs: aws_sdk_sqs::Client,
    failures_url: String,
}

async fn stream_setup(items: &[&str]) -> Setup {
    let emulator = Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let stack = provision(&sdk, &Template::translate_text(STREAM_TEMPLATE).unwrap())
        .await
        .unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    for pk in items {
        dynamodb
            .put_item()
            .table_name(stack.table_name("Table").unwrap())
            .item("pk", AttributeValue::S((*pk).into()))
            .send()
            .await
            .unwrap();
    }
    let mapping = stack.stream_mappings().remove(0);
    Setup {
        poller: StreamPoller::new(&sdk, mapping),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        failures_url: stack.queue_url("Failures").unwrap().to_owned(),
        sdk,
        _emulator: emulator,
    }
}

fn pks(event: &Value) -> Vec<String> {
    event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["dynamodb"]["NewImage"]["pk"]["S"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn records_arrive_filtered_in_order_and_a_partial_failure_resumes_at_the_failed_record() {
    let mut setup = stream_setup(&["keep-1", "drop-1", "keep-2", "keep-3", "keep-4"]).await;
    let seen = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
    let failed_once = Arc::new(Mutex::new(false));
    let function = {
        let seen = seen.clone();
        from_fn(move |event: Value| {
            let seen = seen.clone();
            let failed_once = failed_once.clone();
            async move {
                // The event is what aws_lambda_events (and so every Rust handler) reads.
                serde_json::from_value::<aws_lambda_events::event::dynamodb::Event>(event.clone())
                    .map_err(|e| InvokeError::new("Runtime.UnmarshalError", e.to_string()))?;
                let batch = pks(&event);
                seen.lock().unwrap().push(batch.clone());
                // keep-3 fails the first time it is seen.
                let mut failed = failed_once.lock().unwrap();
                let position = batch.iter().position(|pk| pk == "keep-3");
                match position {
                    Some(index) if !*failed => {
                        *failed = true;
                        let sequence =
                            event["Records"][index]["dynamodb"]["SequenceNumber"].clone();
                        Ok(json!({"batchItemFailures": [{"itemIdentifier": sequence}]}))
                    }
                    _ => Ok(json!({"batchItemFailures": []})),
                }
            }
        })
    };
    let report = setup
        .poller
        .run_until_idle(&function, Instant::now() + DEADLINE)
        .await
        .unwrap();
    let batches = seen.lock().unwrap().clone();
    assert_eq!(
        batches,
        [vec!["keep-1", "keep-2", "keep-3"], vec!["keep-3", "keep-4"],],
        "filtered, batched by 3, retried from the failed record"
    );
    assert_eq!(report.filtered_out, 1);
    assert_eq!(report.succeeded, 4);
}

#[tokio::test]
async fn a_record_failing_every_retry_goes_to_the_failure_destination() {
    let mut setup = stream_setup(&["keep-1", "keep-2"]).await;
    let attempts = Arc::new(Mutex::new(0));
    let function = {
        let attempts = attempts.clone();
        from_fn(move |_event: Value| {
            let attempts = attempts.clone();
            async move {
                *attempts.lock().unwrap() += 1;
                Err::<Value, _>(InvokeError::new("Handler.Error", "always fails"))
            }
        })
    };
    let report = setup
        .poller
        .run_until_idle(&function, Instant::now() + DEADLINE)
        .await
        .unwrap();
    assert_eq!(*attempts.lock().unwrap(), 3, "the first try and 2 retries");
    assert_eq!(report.sent_to_failure_destination, 2);

    let messages = setup
        .sqs
        .receive_message()
        .queue_url(&setup.failures_url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(messages.messages()[0].body().unwrap()).unwrap();
    assert_eq!(
        body["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(body["DDBStreamBatchInfo"]["batchSize"], 2);
    assert!(body["DDBStreamBatchInfo"]["startSequenceNumber"].is_string());
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_nothing_in_the_stream() {
    let mut setup = stream_setup(&["keep-first"]).await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let function = {
        let seen = seen.clone();
        from_fn(move |event: Value| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().extend(pks(&event));
                Ok(json!({"batchItemFailures": []}))
            }
        })
    };
    // The poller holds its shard iterator across the cancelled transaction.
    setup
        .poller
        .run_until_idle(&function, Instant::now() + DEADLINE)
        .await
        .unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&setup.sdk);
    let put = |pk: &str, condition: &str| {
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .put(
                aws_sdk_dynamodb::types::Put::builder()
                    .table_name("Table")
                    .item("pk", AttributeValue::S(pk.into()))
                    .condition_expression(condition)
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let cancelled = dynamodb
        .transact_write_items()
        .transact_items(put("keep-cancelled", "attribute_not_exists(pk)"))
        .transact_items(put("keep-first", "attribute_not_exists(pk)"))
        .send()
        .await;
    assert!(
        cancelled.is_err(),
        "keep-first exists, so the transaction is cancelled"
    );
    dynamodb
        .put_item()
        .table_name("Table")
        .item("pk", AttributeValue::S("keep-later".into()))
        .send()
        .await
        .unwrap();
    setup
        .poller
        .run_until_idle(&function, Instant::now() + DEADLINE)
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["keep-first", "keep-later"]);
}

/// The fan-out template on a fresh emulator, with one message waiting in its shipping
/// queue: where the queue poller's tests start.
struct Shipping {
    _emulator: Emulator,
    sdk: aws_config::SdkConfig,
    stack: emulator::provision::Stack,
    sqs: aws_sdk_sqs::Client,
}

async fn shipping_queue_holding(body: &str) -> Shipping {
    let emulator = Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let stack = provision(&sdk, &Template::translate_text(FANOUT_TEMPLATE).unwrap())
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    sqs.send_message()
        .queue_url(stack.queue_url("ShippingQueue").unwrap())
        .message_body(body)
        .send()
        .await
        .unwrap();
    Shipping {
        _emulator: emulator,
        sdk,
        stack,
        sqs,
    }
}

#[tokio::test]
async fn a_message_failing_every_try_lands_in_the_dlq_after_max_receive_count() {
    let Shipping {
        _emulator,
        sdk,
        stack,
        sqs,
    } = shipping_queue_holding("cannot be shipped").await;
    let dlq_url = stack
        .queue_url("ShippingDeadLetterQueue")
        .unwrap()
        .to_owned();
    let invocations = Arc::new(Mutex::new(0));
    let function = {
        let invocations = invocations.clone();
        from_fn(move |event: Value| {
            let invocations = invocations.clone();
            async move {
                *invocations.lock().unwrap() += 1;
                let id = event["Records"][0]["messageId"].clone();
                Ok(json!({"batchItemFailures": [{"itemIdentifier": id}]}))
            }
        })
    };
    // The queue's 60 s visibility timeout, shortened for this test: five tries in a row.
    let poller = lambda_host::queues::QueuePoller::new(&sdk, stack.queue_mappings().remove(0))
        .redelivery(Redelivery::After(Duration::ZERO));
    let deadline = Instant::now() + DEADLINE;
    let dead = loop {
        poller.poll_once(&function).await.unwrap();
        let dead = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "the message never reached the DLQ"
        );
    };
    assert_eq!(dead[0].body(), Some("cannot be shipped"));
    assert_eq!(
        *invocations.lock().unwrap(),
        5,
        "maxReceiveCount tries, then the DLQ"
    );
}

/// As on AWS, a message whose invocation failed is left on the queue and comes back
/// only once the queue's `VisibilityTimeout` has passed since its receive: never sooner,
/// which is what sizing a queue against its consumer's timeout is about.
#[tokio::test]
async fn a_failed_message_comes_back_after_its_queues_visibility_timeout() {
    const VISIBILITY: Duration = Duration::from_secs(3);
    let emulator = Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let template = FANOUT_TEMPLATE.replace("VisibilityTimeout: 60", "VisibilityTimeout: 3");
    let stack = provision(&sdk, &Template::translate_text(&template).unwrap())
        .await
        .unwrap();
    aws_sdk_sqs::Client::new(&sdk)
        .send_message()
        .queue_url(stack.queue_url("ShippingQueue").unwrap())
        .message_body("fails once")
        .send()
        .await
        .unwrap();
    let received_at = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let function = {
        let received_at = received_at.clone();
        from_fn(move |event: Value| {
            let received_at = received_at.clone();
            async move {
                let mut times = received_at.lock().unwrap();
                times.push(Instant::now());
                let id = event["Records"][0]["messageId"].clone();
                Ok(if times.len() == 1 {
                    json!({"batchItemFailures": [{"itemIdentifier": id}]})
                } else {
                    json!({"batchItemFailures": []})
                })
            }
        })
    };
    // The default: nothing set, as make dev and make demo run.
    let poller = lambda_host::queues::QueuePoller::new(&sdk, stack.queue_mappings().remove(0));
    let deadline = Instant::now() + DEADLINE;
    while received_at.lock().unwrap().len() < 2 {
        poller.poll_once(&function).await.unwrap();
        assert!(
            Instant::now() < deadline,
            "the failed message never came back"
        );
    }
    let times = received_at.lock().unwrap().clone();
    let gap = times[1] - times[0];
    assert!(
        gap >= VISIBILITY - Duration::from_millis(100),
        "the message came back after {gap:?}, before the queue's {VISIBILITY:?}"
    );
}

/// A batch whose invocation timed out is retried only after the claims that invocation
/// held have lapsed (a second past its deadline), however short the host's retry delay.
#[tokio::test]
async fn a_timed_out_batch_waits_for_its_claims_to_lapse_before_its_retry() {
    let Shipping {
        _emulator,
        sdk,
        stack,
        ..
    } = shipping_queue_holding("slow").await;
    let timed_out = from_fn(|_event: Value| async {
        Err(InvokeError::new(
            lambda_host::invoke::TIMED_OUT,
            "Task timed out after 10.00 seconds",
        ))
    });
    let poller = lambda_host::queues::QueuePoller::new(&sdk, stack.queue_mappings().remove(0))
        .redelivery(Redelivery::After(Duration::ZERO));
    let deadline = Instant::now() + DEADLINE;
    let report = loop {
        let report = poller.poll_once(&timed_out).await.unwrap();
        if report.delivered > 0 {
            break report;
        }
        assert!(Instant::now() < deadline, "the message never arrived");
    };
    assert_eq!(report.failed, 1);
    let failed_at = Instant::now();
    let ok = from_fn(|_event: Value| async { Ok(json!({"batchItemFailures": []})) });
    loop {
        if poller.poll_once(&ok).await.unwrap().succeeded == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the message never came back");
    }
    assert!(
        failed_at.elapsed() >= Duration::from_millis(1900),
        "retried after {:?}, while the timed-out invocation's claims could still be held",
        failed_at.elapsed()
    );
}

/// A queue of its own on `emulator`, with a redrive policy to `dead_letters` (an ARN)
/// after `max_receives` receives if given, and the mapping a function with
/// `ReportBatchItemFailures` would have on it.
async fn worker_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letters: Option<(&str, u32)>,
) -> emulator::provision::QueueMapping {
    let mut create = sqs.create_queue().queue_name(name);
    if let Some((arn, max_receives)) = dead_letters {
        create = create.attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives}).to_string(),
        );
    }
    let queue_url = create.send().await.unwrap().queue_url.unwrap();
    emulator::provision::QueueMapping {
        function: "Worker".into(),
        queue_arn: queue_attribute(sqs, &queue_url, QueueAttributeName::QueueArn).await,
        queue_url,
        batch_size: 10,
        batching_window_seconds: 0,
        report_batch_item_failures: true,
        maximum_concurrency: None,
        filters: vec![],
    }
}

async fn queue_attribute(sqs: &aws_sdk_sqs::Client, url: &str, name: QueueAttributeName) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&name)
        .unwrap()
}

async fn send_all(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[&str]) {
    for body in bodies {
        sqs.send_message()
            .queue_url(url)
            .message_body(*body)
            .send()
            .await
            .unwrap();
    }
}

/// One poll that delivers the whole batch.
async fn poll_batch(
    poller: &lambda_host::queues::QueuePoller,
    function: &dyn lambda_host::invoke::Invoke,
    size: usize,
) -> lambda_host::queues::QueueReport {
    let report = poller.poll_once(function).await.unwrap();
    assert_eq!(report.delivered, size, "one batch: {report:?}");
    report
}

/// An SQS mapping with `FilterCriteria` invokes the function only with the messages
/// that match (a JSON body matched field by field), and deletes the others without an
/// invocation, as Lambda does: they neither reach the function nor stay on the queue.
#[tokio::test]
async fn an_sqs_filter_delivers_the_matches_and_deletes_the_rest_unseen() {
    let emulator = emulator::Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut mapping = worker_queue(&sqs, "Filtered", None).await;
    mapping.filters = vec![
        emulator::filter::Filter::parse(&json!({"body": {"type": [{"prefix": "Order"}]}})).unwrap(),
    ];
    let queue = mapping.queue_url.clone();
    send_all(
        &sqs,
        &queue,
        &[
            r#"{"type": "OrderPlaced"}"#,
            r#"{"type": "PaymentFailed"}"#,
            "not json",
            r#"{"type": "OrderConfirmed"}"#,
        ],
    )
    .await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let function = {
        let seen = seen.clone();
        lambda_host::invoke::from_fn(move |event: Value| {
            let seen = seen.clone();
            async move {
                for record in event["Records"].as_array().unwrap() {
                    seen.lock()
                        .unwrap()
                        .push(record["body"].as_str().unwrap().to_owned());
                }
                Ok(json!({"batchItemFailures": []}))
            }
        })
    };
    let poller = lambda_host::queues::QueuePoller::new(&sdk, mapping);
    let mut reports = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while reports
        .iter()
        .map(|r: &lambda_host::queues::QueueReport| r.delivered + r.filtered_out)
        .sum::<usize>()
        < 4
    {
        assert!(Instant::now() < deadline, "{reports:?}");
        reports.push(poller.poll_once(&function).await.unwrap());
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            r#"{"type": "OrderConfirmed"}"#,
            r#"{"type": "OrderPlaced"}"#
        ]
    );
    assert_eq!(reports.iter().map(|r| r.filtered_out).sum::<usize>(), 2);
    assert!(
        reports.iter().all(|r| r.unsettled.is_empty()),
        "{reports:?}"
    );
    assert_eq!(
        depth_reaches(&sqs, &queue, (0, 0)).await,
        (0, 0),
        "nothing left"
    );
}

/// Lambda's poller settles each message of a batch on its own: a failed message whose
/// visibility change fails (someone deleted it meanwhile) neither stops the handled ones
/// from being deleted nor the next failed one from being made visible for its retry,
/// and the report names it.
#[tokio::test]
async fn a_failed_visibility_change_leaves_the_rest_of_the_batch_settled() {
    let emulator = emulator::Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mapping = worker_queue(&sqs, "SettleEach", None).await;
    let queue = mapping.queue_url.clone();
    send_all(&sqs, &queue, &["gone", "handled-1", "handled-2", "retry"]).await;
    let gone_id = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let function = {
        let (sqs, queue, gone_id) = (sqs.clone(), queue.clone(), gone_id.clone());
        lambda_host::invoke::from_fn(move |event: Value| {
            let (sqs, queue, gone_id) = (sqs.clone(), queue.clone(), gone_id.clone());
            async move {
                let mut failures = Vec::new();
                for record in event["Records"].as_array().unwrap() {
                    let id = record["messageId"].as_str().unwrap();
                    match record["body"].as_str().unwrap() {
                        "gone" => {
                            // Fails, and is deleted out of band before the host settles.
                            sqs.delete_message()
                                .queue_url(&queue)
                                .receipt_handle(record["receiptHandle"].as_str().unwrap())
                                .send()
                                .await
                                .unwrap();
                            *gone_id.lock().unwrap() = id.to_owned();
                            failures.push(json!({"itemIdentifier": id}));
                        }
                        "retry" => failures.push(json!({"itemIdentifier": id})),
                        _ => {}
                    }
                }
                Ok(json!({"batchItemFailures": failures}))
            }
        })
    };
    let poller = lambda_host::queues::QueuePoller::new(&sdk, mapping)
        .redelivery(lambda_host::queues::Redelivery::After(Duration::ZERO));

    let report = poll_batch(&poller, &function, 4).await;

    assert_eq!((report.succeeded, report.failed), (2, 2), "{report:?}");
    let unsettled: Vec<(&str, &str)> = report
        .unsettled
        .iter()
        .map(|f| (f.message_id.as_str(), f.operation))
        .collect();
    let gone_id = gone_id.lock().unwrap().clone();
    assert_eq!(unsettled, [(gone_id.as_str(), "ChangeMessageVisibility")]);
    assert_eq!(
        depth_reaches(&sqs, &queue, (1, 0)).await,
        (1, 0),
        "both handled messages deleted, the other failed one visible again"
    );
    let left = sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body(), Some("retry"));
}

/// A DeleteMessageBatch answers per entry: an entry SQS refuses (the message left the
/// queue meanwhile: here the redrive policy moved it to the DLQ) is reported with its id
/// and SQS's reason, and the other entries of the batch are still deleted.
#[tokio::test]
async fn a_refused_delete_entry_is_reported_and_the_others_are_deleted() {
    let emulator = emulator::Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq = sqs
        .create_queue()
        .queue_name("SettleEachDlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = queue_attribute(&sqs, &dlq, QueueAttributeName::QueueArn).await;
    let mapping = worker_queue(&sqs, "SettleEach", Some((&dlq_arn, 2))).await;
    let queue = mapping.queue_url.clone();
    send_all(&sqs, &queue, &["moved-away", "handled-1", "handled-2"]).await;
    let moved_id = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let function = {
        let (sqs, queue, dlq, moved_id) =
            (sqs.clone(), queue.clone(), dlq.clone(), moved_id.clone());
        lambda_host::invoke::from_fn(move |event: Value| {
            let (sqs, queue, dlq, moved_id) =
                (sqs.clone(), queue.clone(), dlq.clone(), moved_id.clone());
            async move {
                let records = event["Records"].as_array().unwrap();
                let record = records.iter().find(|r| r["body"] == "moved-away").unwrap();
                *moved_id.lock().unwrap() = record["messageId"].as_str().unwrap().to_owned();
                // Every record is handled, but meanwhile this one is received again
                // until the redrive policy moves it to the DLQ.
                sqs.change_message_visibility()
                    .queue_url(&queue)
                    .receipt_handle(record["receiptHandle"].as_str().unwrap())
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
                let deadline = Instant::now() + DEADLINE;
                while depth(&sqs, &dlq).await.0 == 0 {
                    assert!(Instant::now() < deadline, "never moved to the DLQ");
                    sqs.receive_message()
                        .queue_url(&queue)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .unwrap();
                }
                Ok(json!({"batchItemFailures": []}))
            }
        })
    };
    let poller = lambda_host::queues::QueuePoller::new(&sdk, mapping);

    let report = poll_batch(&poller, &function, 3).await;

    assert_eq!(report.succeeded, 3, "{report:?}");
    let moved_id = moved_id.lock().unwrap().clone();
    let [failure] = report.unsettled.as_slice() else {
        panic!("one message not deleted: {report:?}");
    };
    assert_eq!(failure.message_id, moved_id);
    assert_eq!(failure.operation, "DeleteMessageBatch");
    assert!(
        failure.reason.contains("ReceiptHandleIsInvalid"),
        "{}",
        failure.reason
    );
    assert_eq!(
        depth_reaches(&sqs, &queue, (0, 0)).await,
        (0, 0),
        "the handled messages are deleted"
    );
}
