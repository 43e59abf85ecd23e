//! The relay against the in-memory fakes, fed stream records as DynamoDB Streams shapes
//! them: what was published, in which order, what went to the DLQ and which record the
//! batch answer names for the retry.

use aws_adapters::tables::{ORDER_SK, order_pk};
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use domain::events::{Envelope, EventType};
use domain::fixtures::{APPROVED_TOKEN, SampleOrder};
use domain::ports::{InMemoryDeadLetters, RecordingPublisher};
use lambda_runtime::LambdaEvent;

use super::*;

/// A stream record of `event_name` (INSERT, MODIFY, REMOVE) with `image` as its new
/// image; its event id is `record-<sequence number>`.
fn record(sequence_number: &str, event_name: &str, image: serde_dynamo::Item) -> EventRecord {
    let mut record = EventRecord::default();
    record.event_id = format!("record-{sequence_number}");
    record.event_name = event_name.to_owned();
    record.change.sequence_number = Some(sequence_number.to_owned());
    record.change.new_image = image;
    record
}

/// The item the order store writes for `event`'s outbox row.
fn outbox_item(event: &Envelope) -> serde_dynamo::Item {
    serde_dynamo::to_item(OutboxRow::of(event).unwrap()).unwrap()
}

/// The stream record of a new outbox row holding `event`.
fn outbox_insert(sequence_number: &str, event: &Envelope) -> EventRecord {
    record(sequence_number, "INSERT", outbox_item(event))
}

async fn run<P: EventPublisher>(
    relay: &Relay<P, InMemoryDeadLetters>,
    records: Vec<EventRecord>,
) -> DynamoDbEventResponse {
    let mut batch = Event::default();
    batch.records = records;
    relay
        .handle(LambdaEvent::new(batch, lambda_runtime::Context::default()))
        .await
}

fn healthy() -> Relay<RecordingPublisher, InMemoryDeadLetters> {
    Relay {
        publisher: RecordingPublisher::default(),
        dead_letters: InMemoryDeadLetters::default(),
    }
}

/// The sequence numbers the batch answer names for a retry.
fn retried(response: &DynamoDbEventResponse) -> Vec<Option<&str>> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_deref())
        .collect()
}

#[tokio::test]
async fn outbox_rows_are_published_verbatim_in_stream_order() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let events = [
        sample.placed.clone(),
        sample.payment_succeeded("ch_1"),
        sample.inventory_reserved("ch_1"),
        sample.order_confirmed(),
    ];
    let relay = healthy();

    let response = run(
        &relay,
        (1..)
            .zip(&events)
            .map(|(n, e)| outbox_insert(&n.to_string(), e))
            .collect(),
    )
    .await;

    assert!(response.batch_item_failures.is_empty());
    let published = relay.publisher.published();
    assert_eq!(published.len(), events.len());
    for (sent, event) in published.iter().zip(&events) {
        assert_eq!(sent.event_type, event.event_type().as_str());
        assert_eq!(sent.correlation_id, event.correlation_id.as_str());
        assert_eq!(
            sent.body,
            event.to_json().unwrap(),
            "the stored envelope, as is"
        );
    }
    assert!(relay.dead_letters.letters().is_empty());
}

#[tokio::test]
async fn records_that_are_not_outbox_inserts_are_skipped() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let order_item = serde_dynamo::Item::from(std::collections::HashMap::from([
        (
            "pk".to_owned(),
            serde_dynamo::AttributeValue::S(order_pk(sample.order.order_id)),
        ),
        (
            "sk".to_owned(),
            serde_dynamo::AttributeValue::S(ORDER_SK.into()),
        ),
    ]));
    let relay = healthy();

    let response = run(
        &relay,
        vec![
            record("1", "INSERT", order_item),
            record("2", "MODIFY", outbox_item(&sample.placed)),
            outbox_insert("3", &sample.placed),
            record("4", "REMOVE", serde_dynamo::Item::default()),
        ],
    )
    .await;

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        relay.publisher.event_types(),
        ["OrderPlaced"],
        "only the insert"
    );
    assert!(relay.dead_letters.letters().is_empty());
}

#[tokio::test]
async fn a_malformed_row_is_dead_lettered_and_the_rows_around_it_are_published() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let mut broken = outbox_item(&sample.payment_failed("card declined"));
    broken.remove("envelope");
    let relay = healthy();

    let response = run(
        &relay,
        vec![
            outbox_insert("1", &sample.placed),
            record("2", "INSERT", broken),
            outbox_insert("3", &sample.payment_succeeded("ch_1")),
        ],
    )
    .await;

    assert!(response.batch_item_failures.is_empty(), "it never blocks");
    assert_eq!(
        relay.publisher.event_types(),
        ["OrderPlaced", "PaymentSucceeded"]
    );
    let [letter] = relay.dead_letters.letters().try_into().expect("one letter");
    assert_eq!(letter.original_id.as_deref(), Some("record-2"));
    assert!(letter.reason.contains("malformed"), "{}", letter.reason);
    assert!(
        letter.body.contains("PaymentFailed"),
        "kept whole: {}",
        letter.body
    );
}

#[tokio::test]
async fn a_publish_failure_stops_the_batch_and_names_that_record() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let mut broken = outbox_item(&sample.placed);
    broken.remove("correlation_id");
    let mut relay = healthy();
    relay.publisher.fail_with = Some(Failure::Transient("SNS throttled".into()));

    let response = run(
        &relay,
        vec![
            outbox_insert("7", &sample.placed),
            outbox_insert("8", &sample.payment_succeeded("ch_1")),
            record("9", "INSERT", broken),
        ],
    )
    .await;

    assert_eq!(
        retried(&response),
        [Some("7")],
        "retry from the first failure"
    );
    assert!(relay.publisher.published().is_empty());
    assert!(
        relay.dead_letters.letters().is_empty(),
        "nothing after the failure is handled, not even the malformed row"
    );
}

/// A topic that accepts every event but those of one type: a failure in the middle of a
/// batch.
struct RefusingOne {
    refused: EventType,
    accepted: RecordingPublisher,
}

impl EventPublisher for RefusingOne {
    async fn publish(
        &self,
        event_type: &str,
        correlation_id: &str,
        body: &str,
    ) -> Result<(), Failure> {
        if event_type == self.refused.as_str() {
            return Err(Failure::Transient(format!("{event_type} refused")));
        }
        self.accepted
            .publish(event_type, correlation_id, body)
            .await
    }
}

#[tokio::test]
async fn the_first_failed_publish_is_the_one_reported_and_the_ones_before_are_out() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let relay = Relay {
        publisher: RefusingOne {
            refused: EventType::PaymentSucceeded,
            accepted: RecordingPublisher::default(),
        },
        dead_letters: InMemoryDeadLetters::default(),
    };

    let response = run(
        &relay,
        vec![
            outbox_insert("1", &sample.placed),
            outbox_insert("2", &sample.payment_succeeded("ch_1")),
            outbox_insert("3", &sample.inventory_reserved("ch_1")),
        ],
    )
    .await;

    assert_eq!(retried(&response), [Some("2")]);
    assert_eq!(relay.publisher.accepted.event_types(), ["OrderPlaced"]);
}

#[tokio::test]
async fn a_malformed_row_the_dlq_cannot_take_is_retried() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let mut broken = outbox_item(&sample.placed);
    broken.remove("envelope");
    let mut relay = healthy();
    relay.dead_letters.fail_with = Some(Failure::Transient("SQS unreachable".into()));

    let response = run(
        &relay,
        vec![
            record("1", "INSERT", broken),
            outbox_insert("2", &sample.payment_succeeded("ch_1")),
        ],
    )
    .await;

    assert_eq!(retried(&response), [Some("1")], "never dropped");
    assert!(relay.publisher.published().is_empty(), "nothing after it");
}
