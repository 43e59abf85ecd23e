//! The emulator answers as AWS does where the pipeline relies on it: DynamoDB in a process
//! of its own, kept-alive connections, paged reads, update expressions, concurrent and
//! stale deletes, and the faults it injects where AWS can fail and moto cannot.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use emulator::Emulator;
use emulator::provision::provision;
use emulator::template::Template;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// The reliability runs serve DynamoDB from a second emulator process: the whole template
/// provisions across the two, the tables and their streams live only in the DynamoDB
/// process, every other service only in the first, and the counts cover both.
#[tokio::test]
async fn dynamodb_apart_serves_tables_and_streams_from_a_process_of_its_own() {
    let emulator = Emulator::start_with_dynamodb_apart(0).await.unwrap();
    assert_eq!(emulator.pids().len(), 2);
    let sdk = emulator.sdk_config();
    let template = Template::translate(&Template::workspace_template()).unwrap();
    let stack = provision(&sdk, &template).await.unwrap();
    let orders = stack.table_name("OrdersTable").unwrap().to_owned();

    let tables_at = |config: &aws_config::SdkConfig| {
        let client = aws_sdk_dynamodb::Client::new(config);
        async move { client.list_tables().send().await.unwrap().table_names }
    };
    assert!(tables_at(&sdk).await.unwrap_or_default().contains(&orders));
    let main_only = emulator::sdk_config_for(&emulator.endpoint_url());
    assert_eq!(
        tables_at(&main_only).await.unwrap_or_default(),
        Vec::<String>::new()
    );
    let dynamodb_url = emulator.dynamodb_endpoint_url().unwrap();
    let dynamodb_only = emulator::sdk_config_for(&dynamodb_url);
    assert!(
        tables_at(&dynamodb_only)
            .await
            .unwrap_or_default()
            .contains(&orders)
    );

    let stream = aws_sdk_dynamodbstreams::Client::new(&sdk)
        .describe_stream()
        .stream_arn(stack.stream_arn("OrdersTable").unwrap())
        .send()
        .await
        .unwrap();
    assert!(stream.stream_description().is_some());
    let queues = aws_sdk_sqs::Client::new(&sdk)
        .list_queues()
        .send()
        .await
        .unwrap();
    assert!(!queues.queue_urls().is_empty());

    let counts = emulator.request_counts().await.unwrap();
    let ours = &counts["test"];
    assert!(ours.contains_key("dynamodb.CreateTable"), "{ours:?}");
    assert!(ours.contains_key("sqs.CreateQueue"), "{ours:?}");
    let env = emulator.endpoint_env();
    assert_eq!(env.get("AWS_ENDPOINT_URL_DYNAMODB"), Some(&dynamodb_url));
    assert_eq!(env.get("AWS_ENDPOINT_URL"), Some(&emulator.endpoint_url()));
}

/// The emulator keeps each connection open for the next request, as AWS endpoints do (a
/// connection per request cost it about a quarter of its CPU under load). A request it
/// answers without reading the body, as an injected fault does, must leave nothing on
/// the connection to be taken for the next request.
#[tokio::test]
async fn a_connection_carries_request_after_request_even_past_an_injected_fault() {
    let emulator = Emulator::start().await.unwrap();
    emulator.faults().make_unavailable(60.0).await.unwrap();
    let port = emulator.port();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut connection = tokio::io::BufReader::new(stream);

    let failed = exchange(&mut connection, &list_queues(port, "PaymentFunction")).await;
    assert_eq!(failed.status, 503, "a function's request meets the outage");
    let served = exchange(&mut connection, &list_queues(port, "test")).await;
    assert_eq!(served.status, 200, "{}", served.body);
    assert!(
        serde_json::from_str::<Value>(&served.body)
            .unwrap()
            .is_object(),
        "{}",
        served.body
    );
    let again = exchange(&mut connection, &list_queues(port, "test")).await;
    assert_eq!(again.status, 200, "{}", again.body);
    for answer in [&failed, &served, &again] {
        assert!(
            !answer
                .headers
                .iter()
                .any(|(name, value)| name == "connection" && value == "close"),
            "the connection stays open: {:?}",
            answer.headers
        );
    }
}

/// An SQS ListQueues, signed (in name only: moto checks no signature) as `caller`. Its
/// body is one that no layer before moto reads, unlike DynamoDB's (the request counter
/// sizes those), so the injected fault answers with it still on the connection.
fn list_queues(port: u16, caller: &str) -> String {
    let body = r#"{"QueueNamePrefix": "none-"}"#;
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: AmazonSQS.ListQueues\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={caller}/20261126/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One HTTP/1.1 answer, as read off the connection.
struct Answer {
    status: u16,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: String,
}

/// Sends `request` on the open connection and reads exactly one answer (by its
/// Content-Length, or its chunks), leaving the connection ready for the next.
async fn exchange(
    connection: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    request: &str,
) -> Answer {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    connection
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    connection.read_line(&mut line).await.unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_default();
    let mut headers = Vec::new();
    loop {
        line.clear();
        connection.read_line(&mut line).await.unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            line.clear();
            connection.read_line(&mut line).await.unwrap();
            let size = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            connection.read_exact(&mut chunk).await.unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let length = header("content-length").map_or(0, |n| n.parse().unwrap());
        body.resize(length, 0);
        connection.read_exact(&mut body).await.unwrap();
    }
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Creates an on-demand table keyed by `keys` (the hash key, then the sort key if any),
/// all strings.
async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str, keys: &[&str]) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let mut create = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (index, key) in keys.iter().enumerate() {
        let kind = if index == 0 {
            KeyType::Hash
        } else {
            KeyType::Range
        };
        create = create
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*key)
                    .key_type(kind)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            );
    }
    create.send().await.unwrap();
}

/// Reads a whole table with Scan, page by page, as the audit does.
async fn scan_keys(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .limit(7)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(s)) => s.clone(),
                Some(AttributeValue::N(n)) => n.clone(),
                _ => String::new(),
            };
            keys.push(format!("{}/{}", text("pk"), text("sk")));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return keys;
        }
    }
}

/// The emulator sorts a table once per scan rather than once per page, and finds each
/// page's start by its key (moto_launcher.py, `scan_pages_from_their_start_key`). What a
/// reader sees must not change: every item once, in key order, and a write between two
/// scans seen by the second.
#[tokio::test]
async fn a_table_read_in_pages_gives_every_item_once_in_key_order_and_sees_later_writes() {
    let emulator = Emulator::start().await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config());
    create_table(&dynamodb, "Pages", &["pk", "sk"]).await;
    let put = |i: usize| {
        dynamodb
            .put_item()
            .table_name("Pages")
            .item("pk", AttributeValue::S(format!("p{}", i % 13)))
            .item("sk", AttributeValue::S(format!("s{i:03}")))
            .send()
    };
    for i in 0..120 {
        put(i).await.unwrap();
    }
    let mut expected: Vec<String> = (0..120).map(|i| format!("p{}/s{i:03}", i % 13)).collect();
    expected.sort();
    assert_eq!(scan_keys(&dynamodb, "Pages").await, expected);

    for i in 120..130 {
        put(i).await.unwrap();
        expected.push(format!("p{}/s{i:03}", i % 13));
    }
    dynamodb
        .delete_item()
        .table_name("Pages")
        .key("pk", AttributeValue::S("p0".into()))
        .key("sk", AttributeValue::S("s000".into()))
        .send()
        .await
        .unwrap();
    expected.retain(|k| k != "p0/s000");
    expected.sort();
    assert_eq!(scan_keys(&dynamodb, "Pages").await, expected);
}

/// The emulator parses each UpdateExpression text once and hands every request its own
/// copy of the tree (`parse_each_update_expression_once`). Requests sharing a text must
/// still apply their own values, on their own items, and an invalid one must fail every
/// time, not only the first.
#[tokio::test]
async fn requests_sharing_an_update_expression_each_apply_their_own_values() {
    let emulator = Emulator::start().await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config());
    create_table(&dynamodb, "Counters", &["pk"]).await;
    let update = |pk: &str, status: &str, entry: &str| {
        dynamodb
            .update_item()
            .table_name("Counters")
            .key("pk", AttributeValue::S(pk.into()))
            .update_expression(
                "SET #status = :to, history = list_append(if_not_exists(history, :empty), :entry) ADD attempts :one",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", AttributeValue::S(status.into()))
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":entry", AttributeValue::L(vec![AttributeValue::S(entry.into())]))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
    };
    update("a", "PAID", "a1").await.unwrap();
    update("b", "PAYMENT_FAILED", "b1").await.unwrap();
    update("a", "CONFIRMED", "a2").await.unwrap();

    let read = |pk: &'static str| {
        let dynamodb = dynamodb.clone();
        async move {
            let item = dynamodb
                .get_item()
                .table_name("Counters")
                .key("pk", AttributeValue::S(pk.into()))
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            let history: Vec<String> = match item.get("history") {
                Some(AttributeValue::L(entries)) => entries
                    .iter()
                    .filter_map(|entry| entry.as_s().ok().cloned())
                    .collect(),
                other => panic!("history is {other:?}"),
            };
            (
                item.get("status").and_then(|s| s.as_s().ok()).cloned(),
                history,
                item.get("attempts").and_then(|n| n.as_n().ok()).cloned(),
            )
        }
    };
    assert_eq!(
        read("a").await,
        (
            Some("CONFIRMED".into()),
            vec!["a1".into(), "a2".into()],
            Some("2".into())
        )
    );
    assert_eq!(
        read("b").await,
        (
            Some("PAYMENT_FAILED".into()),
            vec!["b1".into()],
            Some("1".into())
        )
    );

    for _ in 0..2 {
        let refused = dynamodb
            .update_item()
            .table_name("Counters")
            .key("pk", AttributeValue::S("a".into()))
            .update_expression("SET attempts = = :to")
            .expression_attribute_values(":to", AttributeValue::S("PAID".into()))
            .send()
            .await;
        let error = refused.unwrap_err().into_service_error();
        assert_eq!(
            error.meta().code(),
            Some("ValidationException"),
            "{error:?}"
        );
    }
}

/// A queue's depth, as the audit reads it while it waits for the pipeline to go quiet:
/// the emulator builds the attributes once per request (`count_queue_attributes_once`).
#[tokio::test]
async fn queue_depth_counts_waiting_and_in_flight_messages() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let emulator = Emulator::start().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config());
    let url = sqs
        .create_queue()
        .queue_name("Depth")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for i in 0..12 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(i.to_string())
            .send()
            .await
            .unwrap();
    }
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(5)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 5);
    assert_eq!(depths(&sqs, &url).await, (7, 5));
    let wrong = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::from("NoSuchAttribute"))
        .send()
        .await;
    assert!(wrong.is_err(), "an unknown attribute name is refused");
}

/// A standard queue created fresh on `sqs`, for the SQS tests below.
async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Receives from `url` until the queue answers empty, holding every message for longer
/// than the test runs: the bodies of every message still visible in it.
async fn receive_everything(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    let mut bodies = Vec::new();
    loop {
        let page = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        if page.messages().is_empty() {
            return bodies;
        }
        bodies.extend(
            page.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
        assert!(Instant::now() < deadline, "the queue never ran dry");
    }
}

/// Receives `receives` pages of up to ten messages from `url` on `tasks` concurrent
/// tasks, holding each for ten minutes: every (body, receipt handle) received.
async fn receive_concurrently(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    tasks: usize,
    receives: usize,
) -> Vec<(String, String)> {
    let receiver = |share: usize| async move {
        let mut held = Vec::new();
        for _ in 0..share {
            let page = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(600)
                .send()
                .await
                .unwrap();
            held.extend(page.messages().iter().map(|m| {
                (
                    m.body().unwrap().to_owned(),
                    m.receipt_handle().unwrap().to_owned(),
                )
            }));
        }
        held
    };
    let shares = (0..tasks).map(|task| receives / tasks + usize::from(task < receives % tasks));
    futures::future::join_all(shares.map(receiver))
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// SQS requests run on concurrent emulator threads (only DynamoDB is serialised), and a
/// delete replaces the queue's message list. A delete that found its message while
/// another replaced the list then cut out a neighbour nobody had received, or undid the
/// other's deletion (moto_launcher.py, `change_each_queue_under_its_lock`). The window
/// is the delete's walk to its message, so a slow consumer holds the head of the backlog
/// and the racing deletes name messages behind it. Exactly the deleted messages go;
/// the held ones and those never received all stay.
#[tokio::test]
async fn concurrent_deletes_remove_exactly_the_messages_they_name() {
    use aws_sdk_sqs::types::{
        ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
        SendMessageBatchRequestEntry,
    };
    use futures::StreamExt as _;
    use std::collections::BTreeSet;
    const BACKLOG: usize = 2000;
    const HELD_PAGES: usize = 100;
    const DELETED_PAGES: usize = 60;
    let emulator = Emulator::start().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config());
    let url = create_queue(&sqs, "Backlog").await;
    let (client, queue) = (&sqs, url.as_str());

    let sent: Vec<_> = futures::stream::iter(0..BACKLOG / 10)
        .map(|batch| {
            let entries = (0..10).map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(format!("message-{:04}", batch * 10 + i))
                    .build()
                    .unwrap()
            });
            client
                .send_message_batch()
                .queue_url(queue)
                .set_entries(Some(entries.collect()))
                .send()
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for batch in sent {
        assert!(batch.unwrap().failed().is_empty());
    }

    let held = receive_concurrently(&sqs, &url, 4, HELD_PAGES).await;
    let received = receive_concurrently(&sqs, &url, 6, DELETED_PAGES).await;
    assert_eq!(held.len(), HELD_PAGES * 10);
    assert_eq!(received.len(), DELETED_PAGES * 10);
    let held_bodies: BTreeSet<String> = held.iter().map(|(body, _)| body.clone()).collect();
    let deleted: BTreeSet<String> = received.iter().map(|(body, _)| body.clone()).collect();
    assert_eq!(
        held_bodies.len() + deleted.len(),
        (HELD_PAGES + DELETED_PAGES) * 10
    );

    // Half one by one, half in batches of ten, all at once.
    let (singly, batched) = received.split_at(received.len() / 2);
    let one_by_one = futures::stream::iter(singly)
        .map(|(_, handle)| async move {
            client
                .delete_message()
                .queue_url(queue)
                .receipt_handle(handle)
                .send()
                .await
                .unwrap();
        })
        .buffer_unordered(24)
        .collect::<Vec<()>>();
    let in_batches = futures::stream::iter(batched.chunks(10))
        .map(|chunk| async move {
            let entries = chunk.iter().enumerate().map(|(i, (_, handle))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("d{i}"))
                    .receipt_handle(handle)
                    .build()
                    .unwrap()
            });
            let answer = client
                .delete_message_batch()
                .queue_url(queue)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .unwrap();
            assert!(answer.failed().is_empty(), "{:?}", answer.failed());
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>();
    futures::future::join(one_by_one, in_batches).await;

    let never_received: Vec<String> = (0..BACKLOG)
        .map(|n| format!("message-{n:04}"))
        .filter(|body| !deleted.contains(body) && !held_bodies.contains(body))
        .collect();
    assert_eq!(
        depths(&sqs, &url).await,
        (never_received.len(), held.len()),
        "the never received waiting, the held in flight, the deleted gone"
    );
    let mut waiting = receive_everything(&sqs, &url).await;
    waiting.sort();
    assert_eq!(waiting, never_received);

    // The held messages come back when their consumer lets them go.
    let released: Vec<_> = futures::stream::iter(held.chunks(10))
        .map(|chunk| async move {
            let entries = chunk.iter().enumerate().map(|(i, (_, handle))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("v{i}"))
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .unwrap()
            });
            client
                .change_message_visibility_batch()
                .queue_url(queue)
                .set_entries(Some(entries.collect()))
                .send()
                .await
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for answer in released {
        assert!(answer.unwrap().failed().is_empty());
    }
    let back: BTreeSet<String> = receive_everything(&sqs, &url).await.into_iter().collect();
    assert_eq!(back, held_bodies);
}

/// SQS DeleteMessage: "You must provide the most recently received receipt handle when
/// you request to delete the message (otherwise, the request succeeds, but the message
/// might not be deleted)." A consumer that overran its visibility timeout must not
/// delete the message another consumer received since; the emulator keeps it
/// (`keep_sqs_requests_independent_of_the_backlog`), and still accepts repeats.
#[tokio::test]
async fn a_delete_with_a_stale_receipt_handle_succeeds_and_keeps_the_message() {
    let emulator = Emulator::start().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config());
    let url = create_queue(&sqs, "Stale").await;
    sqs.send_message()
        .queue_url(&url)
        .message_body("once")
        .send()
        .await
        .unwrap();
    let receive = |visibility_timeout: i32| {
        sqs.receive_message()
            .queue_url(&url)
            .visibility_timeout(visibility_timeout)
            .wait_time_seconds(1)
            .send()
    };
    let first = receive(1).await.unwrap().messages()[0]
        .receipt_handle()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + DEADLINE;
    let second = loop {
        // Empty until the first receipt's visibility timeout lapses.
        if let Some(message) = receive(600).await.unwrap().messages().first() {
            break message.receipt_handle().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the message never came back");
    };
    assert_ne!(first, second);
    let delete = |handle: &str| {
        sqs.delete_message()
            .queue_url(&url)
            .receipt_handle(handle)
            .send()
    };

    delete(&first).await.expect("a stale handle is accepted");
    assert_eq!(depths(&sqs, &url).await, (0, 1), "and the message stays");
    delete(&second).await.expect("the latest handle deletes");
    assert_eq!(depths(&sqs, &url).await, (0, 0));
    delete(&second).await.expect("a repeat is accepted");
    delete(&first).await.expect("so is the stale one, now");
    let unknown = delete("no-such-handle")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(unknown.is_receipt_handle_is_invalid(), "{unknown:?}");
}

/// A table "Faults" keyed by `pk` on a fresh emulator, and a client for it signed as
/// InventoryFunction: where the DynamoDB fault tests start.
async fn faults_table() -> (Emulator, aws_sdk_dynamodb::Client) {
    let emulator = Emulator::start().await.unwrap();
    create_table(
        &aws_sdk_dynamodb::Client::new(&emulator.sdk_config()),
        "Faults",
        &["pk"],
    )
    .await;
    let inventory =
        aws_sdk_dynamodb::Client::new(&emulator.sdk_config_signed_as("InventoryFunction"));
    (emulator, inventory)
}

/// A TransactWriteItems putting `pks` into "Faults", sent by `client`.
async fn put_together(
    client: &aws_sdk_dynamodb::Client,
    pks: &[&str],
) -> Result<(), aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError> {
    use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
    let items = pks.iter().map(|pk| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name("Faults")
                    .item("pk", AttributeValue::S((*pk).into()))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    client
        .transact_write_items()
        .set_transact_items(Some(items.collect()))
        .send()
        .await
        .map(drop)
        .map_err(|e| e.into_service_error())
}

/// Every key in "Faults", sorted.
async fn faults_keys(emulator: &Emulator) -> Vec<String> {
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config());
    let mut keys: Vec<String> = scan_keys(&dynamodb, "Faults")
        .await
        .into_iter()
        .map(|key| key.trim_end_matches('/').to_owned())
        .collect();
    keys.sort();
    keys
}

/// The cancellation reasons' codes of a cancelled transaction.
fn cancellation_codes(
    error: aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> Vec<String> {
    match error {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or_default().to_owned())
            .collect(),
        other => panic!("not a cancellation: {other:?}"),
    }
}

/// DynamoDB cancels a transaction when another one holds one of its items; the emulator
/// serialises DynamoDB, so only an injected fault produces it. It strikes exactly the
/// transactions it is aimed at, in DynamoDB's own form (one TransactionConflict reason,
/// None for the other items), writes nothing, and never touches the host's requests.
#[tokio::test]
async fn an_injected_transaction_conflict_cancels_exactly_the_transaction_aimed_at() {
    use emulator::DynamoDbFault;
    let (emulator, inventory) = faults_table().await;
    let faults = emulator.faults();
    let payment = aws_sdk_dynamodb::Client::new(&emulator.sdk_config_signed_as("PaymentFunction"));
    faults
        .fail_next(DynamoDbFault::TransactionConflict, "InventoryFunction", 1)
        .await
        .unwrap();

    put_together(&payment, &["p1", "p2"])
        .await
        .expect("another function's transaction is not the one aimed at");
    let error = put_together(&inventory, &["a", "b", "c"])
        .await
        .unwrap_err();
    let message = error.meta().message().unwrap_or_default().to_owned();
    let mut codes = cancellation_codes(error);
    assert!(message.starts_with("Transaction cancelled"), "{message}");
    assert!(message.contains("TransactionConflict"), "{message}");
    codes.sort();
    assert_eq!(codes, ["None", "None", "TransactionConflict"]);
    assert_eq!(
        faults_keys(&emulator).await,
        ["p1", "p2"],
        "nothing written"
    );
    put_together(&inventory, &["a", "b", "c"])
        .await
        .expect("only the next one was to fail");

    faults
        .fail_share(DynamoDbFault::TransactionConflict, 1.0, 60.0)
        .await
        .unwrap();
    let host = aws_sdk_dynamodb::Client::new(&emulator.sdk_config());
    put_together(&host, &["h"])
        .await
        .expect("the host's requests are never failed");
    let codes = cancellation_codes(put_together(&payment, &["p3"]).await.unwrap_err());
    assert_eq!(codes, ["TransactionConflict"]);
    faults
        .fail_share(DynamoDbFault::TransactionConflict, 0.0, 0.0)
        .await
        .unwrap();
    put_together(&payment, &["p3"]).await.unwrap();
    assert_eq!(
        faults_keys(&emulator).await,
        ["a", "b", "c", "h", "p1", "p2", "p3"]
    );
    let injected = faults.injected().await.unwrap();
    assert_eq!(
        injected.get("transaction_conflict"),
        Some(&2),
        "{injected:?}"
    );
}

/// DynamoDB reports throttling inside a transaction as a cancellation whose reason is
/// ThrottlingError, not as a throttling exception the SDK would retry.
#[tokio::test]
async fn an_injected_transaction_throttle_cancels_with_a_throttling_reason() {
    use emulator::DynamoDbFault;
    let (emulator, inventory) = faults_table().await;
    emulator
        .faults()
        .fail_next(DynamoDbFault::TransactionThrottled, "InventoryFunction", 1)
        .await
        .unwrap();
    let mut codes = cancellation_codes(put_together(&inventory, &["a", "b"]).await.unwrap_err());
    codes.sort();
    assert_eq!(codes, ["None", "ThrottlingError"]);
    assert!(faults_keys(&emulator).await.is_empty(), "nothing written");
    put_together(&inventory, &["a", "b"]).await.unwrap();
    assert_eq!(faults_keys(&emulator).await, ["a", "b"]);
}

/// A throttled single-item write answers ProvisionedThroughputExceededException: the
/// SDK's retries absorb one, as on AWS; with retries off the caller sees it. Reads are
/// not writes, and do not use the fault up.
#[tokio::test]
async fn an_injected_write_throttle_is_retried_by_the_sdk_and_seen_without_retries() {
    use emulator::DynamoDbFault;
    let (emulator, inventory) = faults_table().await;
    let faults = emulator.faults();
    let put = |client: &aws_sdk_dynamodb::Client, pk: &str| {
        client
            .put_item()
            .table_name("Faults")
            .item("pk", AttributeValue::S(pk.into()))
            .send()
    };
    faults
        .fail_next(DynamoDbFault::WriteThrottled, "InventoryFunction", 1)
        .await
        .unwrap();
    put(&inventory, "retried").await.expect("the SDK retries");
    assert_eq!(faults.injected().await.unwrap()["write_throttle"], 1);

    let config = aws_sdk_dynamodb::config::Builder::from(
        &emulator.sdk_config_signed_as("InventoryFunction"),
    )
    .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
    .build();
    let no_retries = aws_sdk_dynamodb::Client::from_conf(config);
    faults
        .fail_next(DynamoDbFault::WriteThrottled, "InventoryFunction", 1)
        .await
        .unwrap();
    no_retries
        .get_item()
        .table_name("Faults")
        .key("pk", AttributeValue::S("retried".into()))
        .send()
        .await
        .expect("a read is not a write");
    let error = put(&no_retries, "refused")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        error.is_provisioned_throughput_exceeded_exception(),
        "{error:?}"
    );
    assert_eq!(faults_keys(&emulator).await, ["retried"]);
    assert_eq!(faults.injected().await.unwrap()["write_throttle"], 2);
}

/// A queue's (waiting, in flight) message counts, as GetQueueAttributes reports them.
async fn depths(sqs: &aws_sdk_sqs::Client, url: &str) -> (usize, usize) {
    use aws_sdk_sqs::types::QueueAttributeName::{
        ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
    };
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(ApproximateNumberOfMessages)
        .attribute_names(ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let count = |name| attributes[&name].parse().unwrap();
    (
        count(ApproximateNumberOfMessages),
        count(ApproximateNumberOfMessagesNotVisible),
    )
}
