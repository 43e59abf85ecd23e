//! Provisioning from templates, as SAM translates them: the repository's own, a new queue
//! and consumer, SAM's Globals and event rules, and the sources and filters it refuses.

use emulator::Emulator;
use emulator::provision::provision;
use emulator::template::Template;
use serde_json::json;

#[tokio::test]
async fn the_repository_template_provisions_twice() {
    let emulator = Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let template = Template::translate(&Template::workspace_template()).unwrap();
    provision(&sdk, &template).await.unwrap();
    let stack = provision(&sdk, &template)
        .await
        .expect("provisioning is idempotent");

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let orders = stack.table_name("OrdersTable").unwrap();
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(orders)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expires_at")
    );
    assert!(
        stack.stream_arn("OrdersTable").is_ok(),
        "orders table has a stream"
    );
    let env = stack.function_env("EventRelayFunction").unwrap();
    assert_eq!(
        env.get("ORDER_EVENTS_TOPIC_ARN").map(String::as_str),
        Some(stack.topic_arn("OrderEventsTopic").unwrap())
    );
    assert_eq!(
        env.get("RUST_LOG").map(String::as_str),
        Some("info"),
        "Globals merged"
    );
    let logging = stack
        .function_property("CreateOrderFunction", "LoggingConfig")
        .unwrap()
        .unwrap();
    assert_eq!(
        logging["ApplicationLogLevel"], "INFO",
        "parameter defaults resolve"
    );
    assert_eq!(
        logging["LogGroup"], "CreateOrderLogGroup",
        "unprovisioned resources keep their logical id"
    );
    let routes = stack.api_routes();
    assert!(
        routes
            .iter()
            .any(|r| r.method == "GET" && r.path == "/orders/{id}")
    );
}

/// A template the project does not have: a new queue with a DLQ, subscribed to a topic
/// with a filter, consumed by a new function. Nothing in local/ names any of it.
const FANOUT_TEMPLATE: &str = include_str!("templates/fanout.yaml");

#[tokio::test]
async fn a_new_queue_and_consumer_need_no_change_here() {
    let emulator = Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let stack = provision(&sdk, &Template::translate_text(FANOUT_TEMPLATE).unwrap())
        .await
        .unwrap();
    let queue_url = stack.queue_url("ShippingQueue").unwrap().to_owned();

    let env = stack.function_env("ShippingFunction").unwrap();
    assert_eq!(env["QUEUE_URL"], queue_url);
    assert_eq!(env["DLQ_NAME"], "ShippingDeadLetterQueue");
    assert_eq!(env["WHERE"], "us-east-1/ShippingQueue");
    let mappings = stack.queue_mappings();
    assert_eq!(mappings.len(), 1);
    assert_eq!(mappings[0].queue_url, queue_url);
    assert_eq!(mappings[0].batch_size, 5);
    assert!(mappings[0].report_batch_item_failures);
    assert_eq!(mappings[0].maximum_concurrency, Some(2));

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap();
    let redrive = attributes.attributes().unwrap()
        [&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy]
        .clone();
    assert!(redrive.contains(stack.queue_arn("ShippingDeadLetterQueue").unwrap()));

    // The subscription filters on the `type` attribute and delivers raw bodies.
    let sns = aws_sdk_sns::Client::new(&sdk);
    for event_type in ["OrderPlaced", "OrderConfirmed"] {
        sns.publish()
            .topic_arn(stack.topic_arn("Events").unwrap())
            .message(format!("{{\"type\":\"{event_type}\"}}"))
            .message_attributes(
                "type",
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(event_type)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let bodies: Vec<_> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert_eq!(bodies, ["{\"type\":\"OrderConfirmed\"}"]);
}

/// A template that leans on SAM's rules: a list in Globals (joined with the function's
/// own on AWS, where a hand-written merge had replaced it), a map in Globals merged key
/// by key, one function with two event types, and an implicit API. The local stack is
/// what SAM's translation says, with nothing in local/ reading `Globals` or `Events`.
const SAM_RULES_TEMPLATE: &str = include_str!("templates/sam_rules.yaml");

#[tokio::test]
async fn the_local_stack_follows_sams_translation() {
    let emulator = Emulator::start().await.unwrap();
    let stack = provision(
        &emulator.sdk_config(),
        &Template::translate_text(SAM_RULES_TEMPLATE).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        stack.function_property("Worker", "Layers").unwrap(),
        Some(json!([
            "arn:aws:lambda:us-east-1:123456789012:layer:everyone:1",
            "arn:aws:lambda:us-east-1:123456789012:layer:own:1"
        ])),
        "a list in Globals is joined with the function's own"
    );
    let env = stack.function_env("Worker").unwrap();
    assert_eq!(env["RUST_LOG"], "info");
    assert_eq!(env["LEVEL"], "own");
    assert_eq!(env["QUEUE"], stack.queue_url("Work").unwrap());

    // Both events of Worker reach it through its `live` alias, as SAM wires them.
    let queues = stack.queue_mappings();
    assert_eq!(queues.len(), 1);
    assert_eq!(
        (queues[0].function.as_str(), queues[0].batch_size),
        ("Worker", 4)
    );
    assert_eq!(queues[0].queue_url, stack.queue_url("Work").unwrap());
    let streams = stack.stream_mappings();
    assert_eq!(streams.len(), 1);
    assert_eq!(
        (streams[0].function.as_str(), streams[0].batch_size),
        ("Worker", 7)
    );
    assert_eq!(streams[0].stream_arn, stack.stream_arn("Table").unwrap());
    assert_eq!(streams[0].starting_position, "LATEST");

    // The implicit API's route, with the permission SAM grants API Gateway.
    let routes = stack.api_routes();
    assert_eq!(routes.len(), 1);
    assert_eq!(
        (
            routes[0].method.as_str(),
            routes[0].path.as_str(),
            routes[0].function.as_str()
        ),
        ("GET", "/things/{id}", "Reader")
    );
    assert!(routes[0].permitted);
}

const STREAM_TEMPLATE: &str = include_str!("templates/stream.yaml");

/// Why provisioning `template`, with `from` replaced by `to`, fails on a fresh emulator.
async fn provisioning_error(template: &str, from: &str, to: &str) -> String {
    let changed = template.replace(from, to);
    assert_ne!(changed, template, "{from} is in the template");
    let emulator = Emulator::start().await.unwrap();
    provision(
        &emulator.sdk_config(),
        &Template::translate_text(&changed).unwrap(),
    )
    .await
    .expect_err("provisioning fails")
    .to_string()
}

/// An event source the host cannot read (here a Kinesis stream) stops provisioning,
/// naming the mapping SAM made and the source, rather than leave the function idle.
#[tokio::test]
async fn an_event_source_the_host_cannot_run_stops_provisioning_naming_it() {
    let error = provisioning_error(
        STREAM_TEMPLATE,
        "          Type: DynamoDB\n          Properties:\n            Stream: !GetAtt Table.StreamArn",
        "          Type: Kinesis\n          Properties:\n            Stream: arn:aws:kinesis:us-east-1:123456789012:stream/clicks",
    )
    .await;
    assert!(
        error.contains("ReaderChanges") && error.contains("stream/clicks is not run locally"),
        "{error}"
    );
}

/// A `FilterCriteria` operator the host does not know stops provisioning with the
/// function and the operator named: the host never runs a filter that would quietly
/// drop every record AWS delivers.
#[tokio::test]
async fn an_unknown_filter_operator_stops_provisioning_naming_it() {
    let from = r#"[{"prefix": "keep"}]"#;
    let error = provisioning_error(STREAM_TEMPLATE, from, r#"[{"wildcard": "keep*"}]"#).await;
    assert!(
        error.contains("Reader") && error.contains("`wildcard`"),
        "{error}"
    );
}

/// SNS filter policies are applied by the emulator (moto), which refuses an operator it
/// does not know when the subscription is created: provisioning stops and names the
/// subscription and the operator, as it does for a `FilterCriteria` one.
#[tokio::test]
async fn an_unknown_filter_policy_operator_stops_provisioning_naming_it() {
    let from = "        type: [OrderConfirmed]";
    let error = provisioning_error(
        FANOUT_TEMPLATE,
        from,
        "        type: [{wildcard: \"Order*\"}]",
    )
    .await;
    assert!(
        error.contains("Subscription") && error.contains("wildcard"),
        "{error}"
    );
}
