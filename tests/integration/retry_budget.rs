//! Every AWS call ends within its function's timeout, retries included.
//!
//! Lambda stops an invocation at its timeout, in the middle of whatever call it was
//! making: the SDK's retries are lost, the batch is retried whole from the start, and
//! the log says only "Task timed out". So each call's worst case, every attempt and
//! every pause between them, must fit inside the function's `Timeout` with room left
//! for the rest of the invocation. The SDK configuration is the functions' own
//! (`aws_adapters::sdk::load_sdk_config`); the timeouts are template.yaml's.

use std::time::Duration;

use aws_adapters::sdk::load_sdk_config;
use aws_adapters::{CONTENTION_MAX_PAUSE, CONTENTION_WINDOW};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use emulator::template::{LAMBDA_FUNCTION, Resource, Template};
use serde_json::Value;

/// The share of a function's timeout one call (or one contention retry loop) may use in
/// the worst case: the rest is the margin for the invocation's other work.
const SHARE: f64 = 0.8;

/// Lambda's default timeout when neither the function nor Globals set one.
const LAMBDA_DEFAULT_TIMEOUT: f64 = 3.0;

/// The longest a call can take with these settings: every attempt running to its
/// attempt timeout and every pause at its longest (a throttled call waits the longest,
/// from `initial_backoff` doubling), unless the operation timeout ends it sooner.
fn worst_case(retry: &RetryConfig, timeouts: &TimeoutConfig) -> Duration {
    let attempts = retry.max_attempts();
    let per_attempt = timeouts
        .operation_attempt_timeout()
        .unwrap_or(Duration::MAX / 8);
    let pauses: Duration = (0..attempts.saturating_sub(1))
        .map(|n| {
            retry
                .initial_backoff()
                .saturating_mul(2u32.saturating_pow(n))
                .min(retry.max_backoff())
        })
        .sum();
    let unbounded = per_attempt.saturating_mul(attempts).saturating_add(pauses);
    timeouts
        .operation_timeout()
        .map_or(unbounded, |whole| whole.min(unbounded))
}

fn timeout_of(function: &Resource) -> f64 {
    match function.properties.get("Timeout") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(LAMBDA_DEFAULT_TIMEOUT),
        _ => LAMBDA_DEFAULT_TIMEOUT,
    }
}

/// template.yaml as CloudFormation deploys it: each function's timeout and environment
/// with Globals applied, by SAM's own translator.
fn deployed() -> Template {
    Template::translate(&Template::workspace_template()).expect("template.yaml translates")
}

/// Whether a function, as written in the SAM source, is called only by the API.
fn is_api_function(function: &Resource) -> bool {
    function
        .properties
        .get("Events")
        .and_then(Value::as_object)
        .is_some_and(|events| events.values().all(|e| e["Type"] == "Api"))
}

#[tokio::test]
async fn every_calls_worst_case_fits_its_functions_timeout_with_a_margin() {
    let sdk = load_sdk_config().await;
    let timeouts = sdk
        .timeout_config()
        .cloned()
        .expect("load_sdk_config sets the timeouts");
    assert!(
        timeouts.operation_timeout().is_some(),
        "no operation timeout: a call's retries are bounded only by the function's timeout"
    );
    assert!(
        timeouts.operation_attempt_timeout() < timeouts.operation_timeout(),
        "an attempt may use the whole operation timeout: a stuck first attempt leaves no \
         time for the retry that would get through"
    );
    // Each client's own view: DynamoDB's may differ (the SDK gives it four tries).
    let clients = [
        (
            "DynamoDB",
            aws_sdk_dynamodb::Config::from(&sdk).retry_config().cloned(),
        ),
        (
            "SNS",
            aws_sdk_sns::Config::from(&sdk).retry_config().cloned(),
        ),
        (
            "SQS",
            aws_sdk_sqs::Config::from(&sdk).retry_config().cloned(),
        ),
    ];
    let worst_calls: Vec<(&str, Duration)> = clients
        .into_iter()
        .map(|(client, retry)| {
            let retry = retry.unwrap_or_else(RetryConfig::standard);
            assert!(retry.max_attempts() > 1, "{client}: retries are off");
            (client, worst_case(&retry, &timeouts))
        })
        .collect();
    // A transaction cancelled by contention is tried again inside the invocation until
    // the window closes, and the last try still has a whole DynamoDB call's budget.
    let worst_contention = CONTENTION_WINDOW + CONTENTION_MAX_PAUSE + worst_calls[0].1;
    let source = Template::load(&Template::workspace_template()).expect("template.yaml parses");
    let template = deployed();
    let mut checked = 0;
    let mut problems = Vec::new();
    for (id, function) in template.of_kind(LAMBDA_FUNCTION) {
        let timeout = timeout_of(function);
        let budget = Duration::from_secs_f64(timeout * SHARE);
        for (client, worst) in &worst_calls {
            checked += 1;
            if *worst > budget {
                problems.push(format!(
                    "{id}: a {client} call may take {worst:?}, more than {SHARE} of its {timeout} s timeout"
                ));
            }
        }
        // The API's functions never retry contention: create-order answers 409 or 503.
        if !is_api_function(&source.resources[id]) {
            checked += 1;
            if worst_contention > budget {
                problems.push(format!(
                    "{id}: a transaction retried through contention may take {worst_contention:?}, more than {SHARE} of its {timeout} s timeout"
                ));
            }
        }
    }
    assert!(
        checked >= 6 * 3,
        "only {checked} checks: were the functions found?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_function_turns_the_sdks_retries_off() {
    for (id, function) in deployed().of_kind(LAMBDA_FUNCTION) {
        let variables = &function.properties["Environment"]["Variables"];
        let attempts = variables.get("AWS_MAX_ATTEMPTS").and_then(Value::as_str);
        assert!(
            attempts.is_none_or(|n| n.parse::<u32>().is_ok_and(|n| n > 1)),
            "{id}: AWS_MAX_ATTEMPTS={attempts:?} turns the SDK's retries off"
        );
        assert_eq!(
            variables["AWS_NEW_RETRIES_2026"], "true",
            "{id}: the SDK's newer retry behaviour (template.yaml's Globals)"
        );
    }
}

#[test]
fn the_worst_case_counts_every_attempt_and_every_pause() {
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_secs(1));
    let open = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(2))
        .build();
    // 3 attempts of 2 s, then pauses of 1 s and 2 s.
    assert_eq!(worst_case(&retry, &open), Duration::from_secs(9));
    let capped = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(4))
        .build();
    assert_eq!(worst_case(&retry, &capped), Duration::from_secs(4));
}
