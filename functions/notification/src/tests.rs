//! Notification's logic against the in-memory fakes, through the same `handle` Lambda
//! calls: what the customer was sent, what went to the DLQ and what the batch answered.

use aws_adapters::consumer::sqs_batch;
use aws_adapters::runtime::EventFunction;
use domain::fixtures::{APPROVED_TOKEN, CUSTOMER, SampleOrder};
use domain::idempotency::InMemoryIdempotencyStore;
use domain::ports::{InMemoryDeadLetters, RecordingPublisher};

use super::*;

/// Notification over fakes it shares with the test: the sender records what was sent,
/// the idempotency store remembers handled events across invocations.
struct Fakes {
    sent: RecordingPublisher,
    keys: InMemoryIdempotencyStore,
    dead_letters: InMemoryDeadLetters,
}

impl Fakes {
    fn new() -> Fakes {
        Fakes {
            sent: RecordingPublisher::default(),
            keys: InMemoryIdempotencyStore::default(),
            dead_letters: InMemoryDeadLetters::default(),
        }
    }

    /// The function, its sender failing with `sender_fails` (`None`: a healthy topic).
    fn notification(
        &self,
        sender_fails: Option<Failure>,
    ) -> App<RecordingPublisher, InMemoryIdempotencyStore, InMemoryDeadLetters> {
        let mut sender = self.sent.clone();
        sender.fail_with = sender_fails;
        App::new(sender, self.keys.clone(), self.dead_letters.clone())
    }

    /// The `kind` of every notification sent, in order.
    fn kinds(&self) -> Vec<String> {
        self.sent.event_types()
    }
}

#[tokio::test]
async fn each_notable_event_sends_its_notification_to_the_customer() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let events = [
        sample.placed.clone(),
        sample.order_confirmed(),
        sample.payment_failed("card declined"),
        sample.order_cancelled("out of stock: SKU-MUG"),
    ];
    let bodies: Vec<String> = events.iter().map(|e| e.to_json().unwrap()).collect();
    let fakes = Fakes::new();

    let answer = fakes
        .notification(None)
        .handle(sqs_batch(&[
            ("m-placed", &bodies[0]),
            ("m-confirmed", &bodies[1]),
            ("m-declined", &bodies[2]),
            ("m-cancelled", &bodies[3]),
        ]))
        .await;

    assert!(answer.batch_item_failures.is_empty());
    let mut kinds = fakes.kinds();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "order_cancelled",
            "order_confirmed",
            "order_received",
            "payment_failed"
        ]
    );
    for sent in fakes.sent.published() {
        let body: serde_json::Value = serde_json::from_str(&sent.body).unwrap();
        assert_eq!(body["customer_id"], CUSTOMER);
        assert_eq!(body["order_id"], sample.order.order_id.to_string());
        assert_eq!(sent.correlation_id, sample.placed.correlation_id.as_str());
        let cause = events.iter().find(|e| body["event_id"] == e.id.to_string());
        assert!(cause.is_some(), "names the event that caused it: {body}");
    }
    assert!(fakes.dead_letters.letters().is_empty());
}

#[tokio::test]
async fn a_redelivered_event_notifies_the_customer_once() {
    let confirmed = SampleOrder::placed(APPROVED_TOKEN).order_confirmed();
    let body = confirmed.to_json().unwrap();
    let fakes = Fakes::new();
    let notification = fakes.notification(None);

    let first = notification.handle(sqs_batch(&[("m-1", &body)])).await;
    let redelivered = notification.handle(sqs_batch(&[("m-2", &body)])).await;

    assert!(first.batch_item_failures.is_empty());
    assert!(
        redelivered.batch_item_failures.is_empty(),
        "a duplicate is done"
    );
    assert_eq!(fakes.kinds(), ["order_confirmed"]);
}

#[tokio::test]
async fn an_event_it_does_not_handle_is_dead_lettered_with_the_reason() {
    let paid = SampleOrder::placed(APPROVED_TOKEN).payment_succeeded("ch_1");
    let fakes = Fakes::new();

    let answer = fakes
        .notification(None)
        .handle(sqs_batch(&[("m-paid", &paid.to_json().unwrap())]))
        .await;

    assert!(
        answer.batch_item_failures.is_empty(),
        "it can never succeed"
    );
    assert!(fakes.sent.published().is_empty(), "nothing sent");
    let [letter] = fakes.dead_letters.letters().try_into().expect("one letter");
    assert_eq!(letter.original_id.as_deref(), Some("m-paid"));
    assert!(
        letter.reason.contains("does not handle PaymentSucceeded"),
        "{}",
        letter.reason
    );
}

#[tokio::test]
async fn a_message_that_is_not_an_event_goes_to_the_dlq_whole() {
    let fakes = Fakes::new();
    let poison = r#"{"order": "not an envelope"}"#;

    let answer = fakes
        .notification(None)
        .handle(sqs_batch(&[("m-poison", poison)]))
        .await;

    assert!(answer.batch_item_failures.is_empty());
    let [letter] = fakes.dead_letters.letters().try_into().expect("one letter");
    assert_eq!(
        (letter.original_id.as_deref(), letter.body.as_str()),
        (Some("m-poison"), poison)
    );
    assert!(
        letter.reason.contains("malformed envelope"),
        "{}",
        letter.reason
    );
    assert!(fakes.kinds().is_empty());
}

#[tokio::test]
async fn a_topic_outage_leaves_the_event_for_redelivery_with_nothing_sent() {
    let placed = SampleOrder::placed(APPROVED_TOKEN).placed;
    let body = placed.to_json().unwrap();
    let fakes = Fakes::new();
    let throttled = Some(Failure::Transient("SNS throttled the publish".into()));

    let answer = fakes
        .notification(throttled)
        .handle(sqs_batch(&[("m-placed", &body)]))
        .await;

    let retried: Vec<String> = answer
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    assert_eq!(retried, ["m-placed"]);
    assert!(fakes.kinds().is_empty());
    assert!(fakes.dead_letters.letters().is_empty());

    // The claim was released: the redelivery, once the topic is back, sends it.
    let redelivery = fakes.notification(None);
    let answer = redelivery.handle(sqs_batch(&[("m-placed", &body)])).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(fakes.kinds(), ["order_received"]);
}
