//! What the host's tests and the proving tools' tests share (each test binary uses some):
//! the repository's pipeline on a local host, the requests that place and read orders and
//! seed stock and wait for an order's status, and how full a queue is.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use emulator::http_client;
use http::Method;
use lambda_host::logs::Logs;
use lambda_host::{Host, HostOptions};
use serde_json::Value;

/// The repository's pipeline on a local host, its API on a free port.
pub async fn pipeline_host() -> Host {
    Host::start(
        HostOptions {
            api_port: 0,
            ..HostOptions::default()
        },
        Logs::default(),
    )
    .await
    .unwrap()
}

/// `POST /orders` to the host's API with an idempotency key and any extra headers.
pub async fn post_order(
    host: &Host,
    order: &Value,
    key: &str,
    extra: &[(&str, &str)],
) -> http_client::Response {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    headers.extend_from_slice(extra);
    http_client::send(
        Method::POST,
        &format!("{}/orders", host.api_url()),
        &headers,
        Some(order.to_string()),
    )
    .await
    .unwrap()
}

/// Puts `units` of `sku` in stock.
pub async fn seed_stock(host: &Host, sku: &str, units: u64) {
    aws_sdk_dynamodb::Client::new(&host.sdk)
        .put_item()
        .table_name(host.stack.table_name("InventoryTable").unwrap())
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(aws_adapters::tables::sku_pk(
                &domain::ids::Sku::parse(sku).unwrap(),
            )),
        )
        .item(
            "stock",
            aws_sdk_dynamodb::types::AttributeValue::N(units.to_string()),
        )
        .send()
        .await
        .unwrap();
}

/// Reads `/orders/{id}` from the host's API until the order's status is `status`; its
/// last answer, then. Fails at the deadline with the last answer read.
pub async fn order_reaches(host: &Host, id: &str, status: &str) -> http_client::Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = http_client::send(
            Method::GET,
            &format!("{}/orders/{id}", host.api_url()),
            &[],
            None,
        )
        .await
        .unwrap();
        if serde_json::from_str::<Value>(&read.body).unwrap()["status"] == status {
            return read;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} never reached {status}: {}",
            read.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /orders/{id}` from the host's API, as the caller `x-local-caller` names.
pub async fn get_order_as(host: &Host, caller: &str, id: &str) -> http_client::Response {
    http_client::send(
        Method::GET,
        &format!("{}/orders/{id}", host.api_url()),
        &[(lambda_host::api::CALLER_HEADER, caller)],
        None,
    )
    .await
    .unwrap()
}

/// (visible, in flight) messages of a queue.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let depth = lambda_host::queues::depth(sqs, url).await.unwrap();
    (depth.waiting, depth.in_flight)
}

/// Waits until a queue's depth is `expected`; its depth at the deadline otherwise.
pub async fn depth_reaches(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    expected: (u64, u64),
) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = depth(sqs, url).await;
        if now == expected || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
