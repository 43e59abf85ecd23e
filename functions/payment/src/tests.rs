//! Payment's logic against the in-memory fakes, through the same `handle` Lambda calls:
//! what was charged or refunded, where the order ended, what went to the outbox and what
//! the batch answered. The same paths run against the emulator in the integration tests.

use aws_adapters::consumer::sqs_batch;
use aws_adapters::runtime::EventFunction;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use domain::events::{Envelope, Event, EventType};
use domain::fixtures::{APPROVED_TOKEN, DECLINED_TOKEN, SampleOrder};
use domain::ports::{InMemoryDeadLetters, InMemoryOrderStore, InMemoryPaymentGateway};

use super::*;

type TestApp = App<InMemoryOrderStore, InMemoryPaymentGateway, InMemoryDeadLetters>;

/// The fakes, kept outside the function so each test can look at them afterwards. Every
/// clone shares its fake's state, so an app built from them reads and writes the same
/// orders, keys, ledger and letters.
#[derive(Default)]
struct World {
    orders: InMemoryOrderStore,
    gateway: InMemoryPaymentGateway,
    dead_letters: InMemoryDeadLetters,
}

impl World {
    /// A world holding `sample`, PENDING.
    async fn with(sample: &SampleOrder) -> World {
        let world = World::default();
        sample.store_in(&world.orders).await.unwrap();
        world
    }

    /// Payment wired to this world's fakes, its provider failing with `gateway_fails`.
    fn payment(&self, gateway_fails: Option<Failure>) -> TestApp {
        let mut gateway = self.gateway.clone();
        gateway.fail_with = gateway_fails;
        App::new(self.orders.clone(), gateway, self.dead_letters.clone())
    }

    /// Delivers `event` to a healthy payment, alone in its batch.
    async fn deliver(&self, event: &Envelope) -> SqsBatchResponse {
        let body = event.to_json().unwrap();
        self.payment(None)
            .handle(sqs_batch(&[("m-1", &body)]))
            .await
    }

    async fn status(&self, sample: &SampleOrder) -> OrderStatus {
        let order = self.orders.get(sample.order.order_id).await.unwrap();
        order.expect("the sample order is stored").status
    }

    /// The card token stored with the sample order, if it is still there.
    async fn stored_token(&self, sample: &SampleOrder) -> Option<String> {
        let stored = self.orders.get_stored(sample.order.order_id).await;
        let stored = stored.unwrap().expect("the sample order is stored");
        stored.payment_token.map(|t| t.expose().to_owned())
    }

    /// Every event payment wrote, as the JSON the relay publishes.
    fn outbox_json(&self) -> Vec<String> {
        self.orders
            .outbox()
            .iter()
            .map(|e| e.to_json().unwrap())
            .collect()
    }

    fn outbox_types(&self) -> Vec<EventType> {
        self.orders
            .outbox()
            .iter()
            .map(Envelope::event_type)
            .collect()
    }

    /// The charge id payment announced in its `PaymentSucceeded` event.
    fn charge_id(&self) -> String {
        self.orders
            .outbox()
            .into_iter()
            .find_map(|e| match e.event {
                Event::PaymentSucceeded(paid) => Some(paid.charge_id),
                _ => None,
            })
            .expect("payment announced a charge")
    }
}

fn total_minor(sample: &SampleOrder) -> i128 {
    i128::from(sample.order.total.amount_minor)
}

#[tokio::test]
async fn a_placed_order_is_charged_its_stored_total_and_becomes_paid() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::with(&sample).await;

    let answer = world.deliver(&sample.placed).await;

    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(world.status(&sample).await, OrderStatus::Paid);
    assert_eq!(world.gateway.net_charged_minor(), total_minor(&sample));
    let outbox = world.orders.outbox();
    assert_eq!(
        world.outbox_types(),
        [EventType::OrderPlaced, EventType::PaymentSucceeded]
    );
    let Event::PaymentSucceeded(paid) = &outbox[1].event else {
        unreachable!("checked above");
    };
    assert_eq!(paid.amount, sample.order.total);
    assert_eq!(paid.items, sample.order.items);
    assert_eq!(outbox[1].correlation_id, sample.placed.correlation_id);
}

/// The event carries no token: the charge used the stored one (the declined card proves
/// it, the fake approves anything else), and the write that settled the payment, either
/// way, deleted it.
#[tokio::test]
async fn the_charge_uses_the_stored_card_token_and_settling_deletes_it() {
    for (token, settled) in [
        (APPROVED_TOKEN, OrderStatus::Paid),
        (DECLINED_TOKEN, OrderStatus::PaymentFailed),
    ] {
        let sample = SampleOrder::placed(token);
        let world = World::with(&sample).await;
        assert!(!sample.placed.to_json().unwrap().contains(token));
        assert_eq!(world.stored_token(&sample).await.as_deref(), Some(token));

        let answer = world.deliver(&sample.placed).await;

        assert!(answer.batch_item_failures.is_empty());
        assert_eq!(world.status(&sample).await, settled, "{token}");
        assert_eq!(world.gateway.charge_count(), 1);
        assert_eq!(world.stored_token(&sample).await, None, "{token}");
        for event in world.outbox_json() {
            assert!(!event.contains(token), "{event}");
        }
    }
}

/// A copy of `OrderPlaced` that comes after the payment settled (a redrive from the DLQ
/// days later, when the provider may have forgotten its key) finds the order PAID and no
/// token, and does nothing: no charge, no error, no dead letter.
#[tokio::test]
async fn a_late_copy_after_the_token_is_gone_charges_nothing() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::with(&sample).await;
    world.deliver(&sample.placed).await;
    assert_eq!(world.stored_token(&sample).await, None);

    let body = sample.placed.to_json().unwrap();
    let answer = world
        .payment(None)
        .handle(sqs_batch(&[("m-late", &body)]))
        .await;

    assert!(answer.batch_item_failures.is_empty());
    assert!(world.dead_letters.letters().is_empty());
    assert_eq!(world.gateway.charge_count(), 1);
    assert_eq!(world.gateway.net_charged_minor(), total_minor(&sample));
    assert_eq!(world.status(&sample).await, OrderStatus::Paid);
    assert_eq!(
        world.outbox_types(),
        [EventType::OrderPlaced, EventType::PaymentSucceeded]
    );
}

/// An order placed by the release before, which kept the token in the event and not on
/// the order, is charged with the event's token (declined here, which proves which
/// token was used); the event still decodes.
#[tokio::test]
async fn an_order_placed_before_the_token_moved_is_charged_with_the_events_token() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::with(&sample).await;
    world.orders.forget_payment_token(sample.order.order_id);
    let mut old: serde_json::Value =
        serde_json::from_str(&sample.placed.to_json().unwrap()).unwrap();
    old["payload"]["payment_token"] = DECLINED_TOKEN.into();

    let answer = world
        .payment(None)
        .handle(sqs_batch(&[("m-old", &old.to_string())]))
        .await;

    assert!(answer.batch_item_failures.is_empty());
    assert!(world.dead_letters.letters().is_empty());
    assert_eq!(world.status(&sample).await, OrderStatus::PaymentFailed);
    assert_eq!(world.gateway.net_charged_minor(), 0);
    for event in world.outbox_json().iter().skip(1) {
        assert!(!event.contains(DECLINED_TOKEN), "{event}");
    }
}

/// A PENDING order with no token anywhere cannot be charged by any retry: the event goes
/// to the DLQ with a reason that names the order (and no token), and nothing moves.
#[tokio::test]
async fn a_pending_order_without_any_token_is_dead_lettered_with_nothing_charged() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::with(&sample).await;
    world.orders.forget_payment_token(sample.order.order_id);

    let answer = world.deliver(&sample.placed).await;

    assert!(answer.batch_item_failures.is_empty(), "not retried");
    let letters = world.dead_letters.letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0].reason.contains("no card token"),
        "{}",
        letters[0].reason
    );
    assert!(
        letters[0]
            .reason
            .contains(&sample.order.order_id.to_string())
    );
    assert_eq!(world.gateway.charge_count(), 0);
    assert_eq!(world.status(&sample).await, OrderStatus::Pending);
}

#[tokio::test]
async fn the_same_order_placed_event_twice_charges_once() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::with(&sample).await;

    let first = world.deliver(&sample.placed).await;
    let again = world.deliver(&sample.placed).await;

    assert!(first.batch_item_failures.is_empty() && again.batch_item_failures.is_empty());
    assert_eq!(world.gateway.charge_count(), 1);
    assert_eq!(world.gateway.net_charged_minor(), total_minor(&sample));
    assert_eq!(
        world.outbox_types(),
        [EventType::OrderPlaced, EventType::PaymentSucceeded],
        "one PaymentSucceeded event"
    );
    assert!(world.dead_letters.letters().is_empty());
}

#[tokio::test]
async fn a_declined_card_fails_the_order_and_takes_no_money() {
    let sample = SampleOrder::placed(DECLINED_TOKEN);
    let world = World::with(&sample).await;

    let answer = world.deliver(&sample.placed).await;

    assert!(
        answer.batch_item_failures.is_empty(),
        "a decline is an answer"
    );
    assert_eq!(world.status(&sample).await, OrderStatus::PaymentFailed);
    assert_eq!(world.gateway.net_charged_minor(), 0);
    let failed = world.orders.outbox().pop().expect("an event was stored");
    assert!(
        matches!(&failed.event, Event::PaymentFailed(f) if f.reason == "card declined"),
        "{failed:?}"
    );
    assert!(world.dead_letters.letters().is_empty());
}

#[tokio::test]
async fn a_stock_shortage_refunds_the_charge_and_cancels_the_order() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::with(&sample).await;
    world.deliver(&sample.placed).await;
    let short = sample.inventory_failed(&world.charge_id());

    let answer = world.deliver(&short).await;
    let again = world.deliver(&short).await;

    assert!(answer.batch_item_failures.is_empty() && again.batch_item_failures.is_empty());
    assert_eq!(world.status(&sample).await, OrderStatus::Cancelled);
    assert_eq!(
        world.gateway.net_charged_minor(),
        0,
        "refunded once, in full"
    );
    assert_eq!(
        world.outbox_types(),
        [
            EventType::OrderPlaced,
            EventType::PaymentSucceeded,
            EventType::PaymentRefunded,
            EventType::OrderCancelled
        ]
    );
}

#[tokio::test]
async fn a_body_that_is_not_an_event_is_dead_lettered_beside_a_good_one() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::with(&sample).await;
    let placed = sample.placed.to_json().unwrap();

    let answer = world
        .payment(None)
        .handle(sqs_batch(&[
            ("m-poison", "{\"hello\":"),
            ("m-good", &placed),
        ]))
        .await;

    assert!(
        answer.batch_item_failures.is_empty(),
        "poison is not retried"
    );
    let letters = world.dead_letters.letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].original_id.as_deref(), Some("m-poison"));
    assert_eq!(letters[0].body, "{\"hello\":");
    assert_eq!(world.status(&sample).await, OrderStatus::Paid);
    assert_eq!(world.gateway.charge_count(), 1);
}

#[tokio::test]
async fn a_provider_outage_leaves_the_event_for_redelivery_with_nothing_charged() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::with(&sample).await;
    let placed = sample.placed.to_json().unwrap();
    let outage = Some(Failure::Transient("provider timed out".into()));

    let answer = world
        .payment(outage)
        .handle(sqs_batch(&[("m-placed", &placed)]))
        .await;

    let failed: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-placed"]);
    assert_eq!(world.gateway.charge_count(), 0);
    assert_eq!(world.status(&sample).await, OrderStatus::Pending);
    assert!(world.dead_letters.letters().is_empty());

    // Nothing was stored: the redelivery, once the provider is back, charges.
    assert!(
        world
            .deliver(&sample.placed)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(world.gateway.net_charged_minor(), total_minor(&sample));
    assert_eq!(world.status(&sample).await, OrderStatus::Paid);
}
