//! The sample events in `events/` (used with `cargo lambda invoke --data-file`) are real
//! Lambda payloads that each function accepts and handles.

use std::path::PathBuf;

use emulator::template::{FUNCTION, Template};
use integration_tests::{Harness, nested};
use lambda_host::invoke::Invoke;
use lambda_host::logs::Logs;
use lambda_host::{Host, HostOptions};
use serde_json::{Value, json};

fn sample(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn the_api_samples_are_api_gateway_proxy_events() {
    let h = Harness::start().await;
    let request = lambda_http::request::from_str(&sample("create-order.json")).unwrap();
    let created = h.send(request).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.header("x-correlation-id"),
        Some("sample-checkout-1")
    );

    let request = lambda_http::request::from_str(&sample("get-order.json")).unwrap();
    let missing = h.send(request).await;
    missing.assert_problem(404, "not-found");
    assert!(
        missing
            .body
            .contains("3f0c9a52-8a4e-4d61-b0a3-5b8f7e2d1c90")
    );
}

#[tokio::test]
async fn the_relay_sample_is_a_stream_batch_it_publishes() {
    let h = Harness::start().await;
    let queue = h.subscribe_queue("sample-watch", &["OrderPlaced"]).await;
    let event: serde_json::Value = serde_json::from_str(&sample("event-relay.json")).unwrap();
    let response = h.relay_function().invoke(event).await.unwrap();
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    let messages = h.receive(&queue, 1).await;
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0]
            .body
            .as_deref()
            .unwrap()
            .contains("sample-checkout-1")
    );
}

/// Every function an SQS queue invokes has a sample batch, `events/<its binary>.json`,
/// that it takes without dead-lettering anything. The consumers are found in the
/// template and run by the local host from their built binaries, so a new consumer is
/// checked the moment it is in the template, with no list here to update.
#[tokio::test]
async fn every_consumer_sample_is_an_sqs_batch_its_function_takes() {
    let template = Template::load(&Template::workspace_template()).expect("template loads");
    let consumers: Vec<(String, String)> = template
        .of_kind(FUNCTION)
        .filter(|(_, function)| {
            function.properties["Events"]
                .as_object()
                .into_iter()
                .flatten()
                .any(|(_, event)| event["Type"] == "SQS")
        })
        .map(|(id, function)| {
            let binary = function.metadata["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} names its binary"));
            (id.to_owned(), binary.to_owned())
        })
        .collect();
    assert!(consumers.len() >= 3, "{consumers:?}");
    let host = Host::start(
        HostOptions {
            template: Template::workspace_template(),
            binaries: nested::target_dir().join("debug"),
            api_port: 0,
            ..HostOptions::default()
        },
        Logs::default(),
    )
    .await
    .expect("the host starts (build the functions first: `make functions`)");
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    for (id, binary) in &consumers {
        let file = format!("{binary}.json");
        let event: Value = serde_json::from_str(&sample(&file)).unwrap();
        let answer = host
            .function(id)
            .expect("the host runs every function of the template")
            .invoke(event)
            .await
            .expect("it answers");
        assert_eq!(
            answer["batchItemFailures"],
            json!([]),
            "{id} with events/{file}"
        );
        let env = host.stack.function_env(id).expect("its environment");
        let dead_letters = sqs
            .receive_message()
            .queue_url(&env["DEAD_LETTER_QUEUE_URL"])
            .send()
            .await
            .expect("read its DLQ");
        assert!(
            dead_letters.messages().is_empty(),
            "{id} dead-lettered its own sample events/{file}: {:?}",
            dead_letters.messages()
        );
    }
}
