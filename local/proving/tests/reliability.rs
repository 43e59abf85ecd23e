//! The fast subset of `make reliability`: each scenario at a few dozen orders, on the real
//! function binaries, audited from the stores. And the proof that the audit can fail: a
//! notification function that skips deduplication, under duplicate deliveries, is caught.

use std::collections::HashMap;
use std::path::PathBuf;

use emulator::{DynamoDbFault, workspace_root};
use lambda_host::HostOptions;
use proving::reliability::{Outcome, Scenario, hot_stock, run, scenarios};

/// Small enough for `make test` (every scenario has at least 20 orders, the hot SKU 40).
const SCALE: f64 = 0.02;

fn scenario(name: &str) -> Scenario {
    scenarios(SCALE)
        .into_iter()
        .find(|s| s.name.starts_with(name))
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

fn assert_passed(outcome: &Outcome) {
    assert!(
        outcome.audit.passed(),
        "{}: {:#?}",
        outcome.scenario.name,
        outcome.audit.failures()
    );
}

#[tokio::test]
async fn duplicate_and_shuffled_deliveries_have_exactly_one_effect_each() {
    let outcome = run(&scenario("duplicates"), &HostOptions::default())
        .await
        .unwrap();
    assert!(
        outcome.duplicates >= outcome.accepted,
        "every message was delivered more than once ({} copies for {} orders)",
        outcome.duplicates,
        outcome.accepted
    );
    assert!(outcome.replayed > 0, "same-key submissions were replayed");
    assert_passed(&outcome);
}

#[tokio::test]
async fn outages_a_stopped_emulator_throttling_and_killed_processes_lose_nothing() {
    let outcome = run(&scenario("faults"), &HostOptions::default())
        .await
        .unwrap();
    assert!(
        outcome.injected.get("unavailable").copied().unwrap_or(0) > 0
            && outcome.injected.get("throttled").copied().unwrap_or(0) > 0,
        "the faults really failed requests: {:?}",
        outcome.injected
    );
    assert!(outcome.killed > 0, "processes were killed");
    assert!(
        outcome.frozen.is_some_and(|d| d.as_secs_f64() >= 3.5),
        "the emulator process was really stopped: {:?}",
        outcome.frozen
    );
    assert_passed(&outcome);
}

/// A sale: every reservation updates one item, 30 % of the transactions are cancelled
/// by conflicts, and still exactly the stock is sold and no order is lost.
#[tokio::test]
async fn a_hot_sku_under_transaction_conflicts_sells_exactly_its_stock() {
    let scenario = scenario("hot SKU");
    let outcome = run(&scenario, &HostOptions::default()).await.unwrap();
    let conflicts = outcome
        .injected
        .get(DynamoDbFault::TransactionConflict.name())
        .copied()
        .unwrap_or(0);
    assert!(
        conflicts > 0,
        "conflicts were injected: {:?}",
        outcome.injected
    );
    let stocked = usize::try_from(hot_stock(scenario.orders)).unwrap();
    let state = |name: &str| outcome.audit.by_state.get(name).copied().unwrap_or(0);
    assert_eq!(
        (state("CONFIRMED"), state("CANCELLED")),
        (stocked, scenario.orders - stocked),
        "the stock sold out exactly, the rest were refunded: {:?}",
        outcome.audit.by_state
    );
    assert_passed(&outcome);
}

#[tokio::test]
async fn hostile_bodies_end_in_dlqs_with_reasons_while_orders_flow() {
    let outcome = run(&scenario("hostile"), &HostOptions::default())
        .await
        .unwrap();
    assert_passed(&outcome);
}

/// A deliberately broken build: notification without deduplication. The audit must
/// name the broken invariant, and only that one.
#[tokio::test]
async fn a_consumer_that_skips_deduplication_fails_the_audit() {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forgetful_notification.py");
    let python = workspace_root().join(".venv/bin/python");
    let options = HostOptions {
        overrides: HashMap::from([(
            "NotificationFunction".to_owned(),
            (python, vec![script.to_string_lossy().into_owned()]),
        )]),
        ..HostOptions::default()
    };
    let outcome = run(&scenario("duplicates"), &options).await.unwrap();
    let broken: Vec<&str> = outcome
        .audit
        .checks
        .iter()
        .filter(|check| !check.holds)
        .map(|check| check.invariant)
        .collect();
    assert_eq!(
        broken,
        ["exactly one notification per notable event"],
        "{:#?}",
        outcome.audit.failures()
    );
}
