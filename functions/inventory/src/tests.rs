//! Inventory's logic against the in-memory fakes, through the same `handle` Lambda calls:
//! what stock is left, where the order ended, what went to the outbox, what went to the
//! DLQ and what the batch answered. The same paths run against the emulator in the
//! integration tests (`saga.rs`, `deliveries.rs`, `contention.rs`).

use aws_adapters::consumer::sqs_batch;
use aws_adapters::runtime::EventFunction;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use domain::events::{Envelope, EventType};
use domain::fixtures::{APPROVED_TOKEN, SampleOrder};
use domain::idempotency::IdempotencyStore;
use domain::ids::Sku;
use domain::ports::{
    InMemoryDeadLetters, InMemoryOrderStore, InMemoryStockStore, OrderStore, Reservation,
};

use super::*;

type TestApp = App<InMemoryStockStore, InMemoryDeadLetters>;

const CHARGE: &str = "ch_1";

fn sku(name: &str) -> Sku {
    Sku::parse(name).unwrap()
}

/// The fakes, kept outside the function so each test can look at them afterwards. Every
/// clone shares its fake's state, so an app built from them reads and writes the same
/// stock, orders, keys and letters.
#[derive(Default)]
struct World {
    stock: InMemoryStockStore,
    dead_letters: InMemoryDeadLetters,
}

impl World {
    /// A world holding `sample`, PAID (its `PaymentSucceeded` stored as payment stores
    /// it), with `mugs` and `tees` in stock (the sample's lines: 2 mugs, 1 tee).
    async fn paid(sample: &SampleOrder, mugs: u64, tees: u64) -> World {
        let world = World::default();
        sample.store_in(world.orders()).await.unwrap();
        let pay = Transition {
            order_id: sample.order.order_id,
            from: OrderStatus::Pending,
            to: OrderStatus::Paid,
            events: vec![sample.payment_succeeded(CHARGE)],
            at: Utc::now(),
        };
        world.orders().transition(&pay).await.unwrap();
        world.stock.set_stock(&sku("SKU-MUG"), mugs).await.unwrap();
        world.stock.set_stock(&sku("SKU-TEE"), tees).await.unwrap();
        world
    }

    fn orders(&self) -> &InMemoryOrderStore {
        self.stock.orders()
    }

    /// Inventory wired to this world's fakes, its stock store failing with `fails`.
    fn inventory(&self, fails: Option<Failure>) -> TestApp {
        let mut stock = self.stock.clone();
        stock.fail_with = fails;
        App::new(stock, self.dead_letters.clone())
    }

    /// Delivers `bodies` in one batch (message ids `m-1`, `m-2`, ...) to an inventory
    /// whose stock store fails with `fails`.
    async fn deliver_to(&self, fails: Option<Failure>, bodies: &[&str]) -> SqsBatchResponse {
        let ids: Vec<String> = (1..=bodies.len()).map(|n| format!("m-{n}")).collect();
        let messages: Vec<(&str, &str)> = ids
            .iter()
            .map(String::as_str)
            .zip(bodies.iter().copied())
            .collect();
        self.inventory(fails).handle(sqs_batch(&messages)).await
    }

    /// Delivers `event` to a healthy inventory, alone in its batch.
    async fn deliver(&self, event: &Envelope) -> SqsBatchResponse {
        self.deliver_to(None, &[&event.to_json().unwrap()]).await
    }

    async fn status(&self, sample: &SampleOrder) -> OrderStatus {
        let order = self.orders().get(sample.order.order_id).await.unwrap();
        order.expect("the sample order is stored").status
    }

    async fn units(&self, name: &str) -> Option<u64> {
        self.stock.stock(&sku(name)).await.unwrap()
    }

    fn outbox_types(&self) -> Vec<EventType> {
        self.orders()
            .outbox()
            .iter()
            .map(Envelope::event_type)
            .collect()
    }
}

fn failed_ids(answer: &SqsBatchResponse) -> Vec<&str> {
    answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

/// What payment stores before inventory runs: the order placed, then paid.
const BEFORE: [EventType; 2] = [EventType::OrderPlaced, EventType::PaymentSucceeded];

#[tokio::test]
async fn a_paid_order_is_reserved_and_confirmed_with_its_events() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::paid(&sample, 10, 5).await;
    let paid = sample.payment_succeeded(CHARGE);

    let answer = world.deliver(&paid).await;

    assert_eq!(failed_ids(&answer), Vec::<&str>::new());
    assert_eq!(world.units("SKU-MUG").await, Some(8));
    assert_eq!(world.units("SKU-TEE").await, Some(4));
    assert_eq!(world.status(&sample).await, OrderStatus::Confirmed);
    assert_eq!(
        world.outbox_types(),
        [
            BEFORE.as_slice(),
            &[EventType::InventoryReserved, EventType::OrderConfirmed]
        ]
        .concat()
    );
    // The events' ids derive from the event that caused them: a retry writes the same.
    let outbox = world.orders().outbox();
    assert_eq!(outbox[2].id, sample.inventory_reserved(CHARGE).id);
    assert_eq!(outbox[2].event, sample.inventory_reserved(CHARGE).event);
    let Some(Reservation::Reserved(lines)) = world.stock.reservation(sample.order.order_id) else {
        panic!("no reservation recorded");
    };
    assert_eq!(lines.len(), 2);
    let key = world
        .orders()
        .idempotency
        .get(&format!("inventory#{}", paid.id))
        .await
        .unwrap();
    assert_eq!(
        key, None,
        "no idempotency key: the reservation record stands for it"
    );
    assert!(world.dead_letters.letters().is_empty());
}

#[tokio::test]
async fn a_duplicate_delivery_changes_nothing_twice() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::paid(&sample, 10, 5).await;
    let paid = sample.payment_succeeded(CHARGE);
    let body = paid.to_json().unwrap();

    let first = world.deliver(&paid).await;
    let outbox = world.orders().outbox();
    let again = world.deliver(&paid).await;
    // Two copies in one batch, handled concurrently: still nothing more.
    let both = world.deliver_to(None, &[&body, &body]).await;

    for answer in [&first, &again, &both] {
        assert_eq!(failed_ids(answer), Vec::<&str>::new());
    }
    assert_eq!(world.units("SKU-MUG").await, Some(8), "reserved once");
    assert_eq!(world.units("SKU-TEE").await, Some(4), "reserved once");
    assert_eq!(world.status(&sample).await, OrderStatus::Confirmed);
    assert_eq!(world.orders().outbox(), outbox, "no event stored twice");
    assert!(world.dead_letters.letters().is_empty());
}

#[tokio::test]
async fn a_short_sku_reserves_nothing_and_asks_for_a_refund() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::paid(&sample, 10, 0).await;
    let paid = sample.payment_succeeded(CHARGE);

    let answer = world.deliver(&paid).await;
    let again = world.deliver(&paid).await;

    assert_eq!(failed_ids(&answer), Vec::<&str>::new());
    assert_eq!(failed_ids(&again), Vec::<&str>::new());
    assert_eq!(world.units("SKU-MUG").await, Some(10), "nothing reserved");
    assert_eq!(world.units("SKU-TEE").await, Some(0));
    assert_eq!(world.status(&sample).await, OrderStatus::Paid);
    assert_eq!(
        world.outbox_types(),
        [BEFORE.as_slice(), &[EventType::InventoryFailed]].concat(),
        "one InventoryFailed, however often the event comes"
    );
    let Some(Event::InventoryFailed(failed)) = world.orders().outbox().pop().map(|e| e.event)
    else {
        panic!("InventoryFailed is not the last event");
    };
    assert_eq!(failed.short_skus, vec![sku("SKU-TEE")]);
    assert_eq!(failed.charge_id, CHARGE);
    assert_eq!(failed.amount, sample.order.total);
    assert_eq!(
        world.stock.reservation(sample.order.order_id),
        Some(Reservation::Failed(vec![sku("SKU-TEE")]))
    );
}

#[tokio::test]
async fn an_order_that_is_not_paid_is_not_moved_backwards() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::default();
    sample.store_in(world.orders()).await.unwrap();
    world.stock.set_stock(&sku("SKU-MUG"), 10).await.unwrap();
    world.stock.set_stock(&sku("SKU-TEE"), 5).await.unwrap();

    let answer = world.deliver(&sample.payment_succeeded(CHARGE)).await;

    assert_eq!(failed_ids(&answer), Vec::<&str>::new());
    assert_eq!(world.status(&sample).await, OrderStatus::Pending);
    assert_eq!(world.units("SKU-MUG").await, Some(10));
    assert_eq!(world.outbox_types(), [EventType::OrderPlaced]);
    assert_eq!(world.stock.reservation(sample.order.order_id), None);
}

#[tokio::test]
async fn a_poison_record_goes_to_the_dlq_without_failing_the_batch() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::paid(&sample, 10, 5).await;

    let answer = world.deliver_to(None, &["not an event"]).await;

    assert_eq!(failed_ids(&answer), Vec::<&str>::new());
    let letters = world.dead_letters.letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].original_id.as_deref(), Some("m-1"));
    assert_eq!(letters[0].body, "not an event");
    assert_eq!(world.units("SKU-MUG").await, Some(10), "nothing reserved");
    assert_eq!(world.status(&sample).await, OrderStatus::Paid);
}

#[tokio::test]
async fn an_event_inventory_does_not_handle_is_poison_too() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::paid(&sample, 10, 5).await;

    let answer = world.deliver(&sample.placed).await;

    assert_eq!(failed_ids(&answer), Vec::<&str>::new());
    let letters = world.dead_letters.letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].reason.contains("OrderPlaced"), "{letters:?}");
    assert_eq!(world.status(&sample).await, OrderStatus::Paid);
}

#[tokio::test]
async fn a_transient_failure_is_reported_for_redelivery_and_the_retry_reserves() {
    let sample = SampleOrder::placed(APPROVED_TOKEN);
    let world = World::paid(&sample, 10, 5).await;
    let body = sample.payment_succeeded(CHARGE).to_json().unwrap();
    let outage = Some(Failure::Transient("throttled".into()));

    let answer = world.deliver_to(outage, &[&body]).await;

    assert_eq!(failed_ids(&answer), ["m-1"], "SQS redelivers it");
    assert!(world.dead_letters.letters().is_empty(), "not poison");
    assert_eq!(world.units("SKU-MUG").await, Some(10));
    assert_eq!(world.status(&sample).await, OrderStatus::Paid);
    assert_eq!(world.outbox_types(), BEFORE);

    let redelivered = world.deliver_to(None, &[&body]).await;
    assert_eq!(failed_ids(&redelivered), Vec::<&str>::new());
    assert_eq!(world.status(&sample).await, OrderStatus::Confirmed);
    assert_eq!(world.units("SKU-MUG").await, Some(8));
}
