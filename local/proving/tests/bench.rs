//! `make bench`'s measuring tools, tested for what they measure (the bench's figures
//! themselves are never asserted: they depend on the machine).

use std::collections::BTreeMap;
use std::process::Command as StdCommand;
use std::time::Duration;

use emulator::workspace_root;
use proving::audit::Audit;
use proving::bench::cold_start::{median, time_cold_starts, time_cold_starts_by_phase};
use proving::bench::cost;
use proving::bench::report::MINIMUM;
use proving::bench::requests::count_paths;
use proving::bench::throughput::{EmulatorLoad, FunctionRun, Throughput};
use tokio::process::Command;

/// A stand-in "function" in bash: it connects to the Runtime API and asks for `path`.
fn asks_for(path: &'static str) -> impl Fn(std::net::SocketAddr) -> Command {
    logs_then_asks_for("", path)
}

/// [`asks_for`], after printing `line` on its standard output, as a function logs.
fn logs_then_asks_for(
    line: &'static str,
    path: &'static str,
) -> impl Fn(std::net::SocketAddr) -> Command {
    move |api| {
        let mut command = Command::new("bash");
        command.arg("-c").arg(format!(
            "printf '%s\\n' '{line}'; exec 3<>/dev/tcp/{}/{}; printf 'GET {path} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; sleep 5",
            api.ip(),
            api.port()
        ));
        command
    }
}

#[tokio::test]
async fn a_cold_start_is_timed_from_spawn_to_the_first_next_request() {
    let times = time_cold_starts(
        "stand-in",
        asks_for("/2018-06-01/runtime/invocation/next"),
        3,
    )
    .await
    .unwrap();
    assert_eq!(times.len(), 3);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "sorted: {times:?}");
    assert!(times.iter().all(|t| *t > 0.0 && *t < 5_000.0), "{times:?}");
    assert_eq!(
        median(&[1.0, 3.0, 2.0][..]),
        3.0,
        "median of an unsorted slice is not asked"
    );
    assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
}

/// A function's own account of its init (`aws_adapters::init_phases`), read from its log
/// line: each phase's median over the runs, in milliseconds, in the order written.
#[tokio::test]
async fn each_init_phase_a_function_logs_is_read_back_as_its_median() {
    let (times, phases) = time_cold_starts_by_phase(
        "stand-in",
        logs_then_asks_for(
            r#"{"level":"INFO","message":"init phases","phases_us":"telemetry=400 client.dynamodb=50 wiring=1500"}"#,
            "/2018-06-01/runtime/invocation/next",
        ),
        3,
    )
    .await
    .unwrap();
    assert_eq!(times.len(), 3);
    assert_eq!(
        phases,
        vec![
            ("telemetry".to_owned(), 0.4),
            ("client.dynamodb".to_owned(), 0.05),
            ("wiring".to_owned(), 1.5),
        ]
    );
    let (_, none) =
        time_cold_starts_by_phase("silent", asks_for("/2018-06-01/runtime/invocation/next"), 1)
            .await
            .unwrap();
    assert!(
        none.is_empty(),
        "a program that logs no phases has none: {none:?}"
    );
}

#[tokio::test]
async fn a_process_that_never_asks_for_an_event_is_an_error_not_a_time() {
    let failed_init = time_cold_starts(
        "reports init error",
        asks_for("/2018-06-01/runtime/init/error"),
        1,
    )
    .await
    .unwrap_err();
    assert!(
        failed_init.to_string().contains("init/error"),
        "the error names what it asked instead: {failed_init}"
    );
    let exits = time_cold_starts(
        "exits at once",
        |_| {
            let mut command = Command::new("bash");
            command
                .arg("-c")
                .arg("echo 'missing setting ORDERS_TABLE' >&2; exit 3");
            command
        },
        1,
    )
    .await
    .unwrap_err();
    assert!(
        exits.to_string().contains("missing setting ORDERS_TABLE"),
        "the error carries the process's stderr: {exits}"
    );
}

#[tokio::test]
async fn every_path_with_a_design_minimum_reaches_it() {
    let binaries = workspace_root().join("target/debug");
    assert!(
        StdCommand::new("test")
            .arg("-x")
            .arg(binaries.join("create-order"))
            .status()
            .unwrap()
            .success(),
        "build the functions first (`cargo build --bins`; make test does)"
    );
    let (host, stores) = proving::bench::start(&binaries).await.unwrap();
    let paths = count_paths(&host, &stores).await.unwrap();
    for (path, minimum, _) in MINIMUM {
        let measured = paths.iter().find(|p| p.path == *path).unwrap();
        if let Some(minimum) = minimum {
            assert_eq!(
                measured.total(),
                *minimum,
                "{path}: {:?} (docs/performance.md explains each minimum)",
                measured.counts
            );
        } else {
            assert!(measured.total() > 0, "{path} made no request at all");
        }
    }
    let poison = paths.iter().find(|p| p.path == "poison message").unwrap();
    assert!(
        poison
            .counts
            .values()
            .all(|ops| ops.keys().all(|op| op == "sqs.SendMessage")),
        "a poison message only costs its DLQ send: {:?}",
        poison.counts
    );
}

fn run_of(orders: usize) -> Throughput {
    let mut requests = BTreeMap::new();
    requests.insert(
        "RelayFunction".to_owned(),
        BTreeMap::from([("sns.Publish".to_owned(), 2 * orders as u64)]),
    );
    requests.insert(
        "ConsumerFunction".to_owned(),
        BTreeMap::from([
            ("sns.PublishBatch".to_owned(), orders as u64 / 10),
            ("sqs.SendMessage".to_owned(), 0),
        ]),
    );
    requests.insert(
        "test".to_owned(),
        BTreeMap::from([("sqs.ReceiveMessage".to_owned(), 99_999)]),
    );
    let functions = BTreeMap::from([
        (
            "RelayFunction".to_owned(),
            FunctionRun {
                invocations: orders as u64,
                mean_ms: 9.2,
                peak_mb: 9,
                delivered: 0,
                log_bytes: 1024 * orders as u64,
            },
        ),
        (
            "ConsumerFunction".to_owned(),
            FunctionRun {
                invocations: orders as u64 / 2,
                mean_ms: 20.0,
                peak_mb: 10,
                delivered: orders as u64,
                log_bytes: 0,
            },
        ),
    ]);
    Throughput {
        orders,
        orders_per_second: 5.0,
        p50_ms: 1,
        p99_ms: 2,
        window: Duration::from_secs(10),
        requests,
        function_requests_per_order: 10.0,
        poller_requests_per_order: 2.0,
        emulator: vec![
            EmulatorLoad {
                serves: "every service but DynamoDB",
                served: 2_000 + 100 + 99_999,
                cpu: Duration::from_secs(8),
                requests_per_order: 12.0,
            },
            EmulatorLoad {
                serves: "DynamoDB and its streams",
                served: 30_000,
                cpu: Duration::from_secs(4),
                requests_per_order: 8.0,
            },
        ],
        host_cpu: Duration::from_secs(1),
        machine_cpu: Duration::from_secs(12),
        read_units: 3.0 * orders as f64,
        write_units: 20.0 * orders as f64,
        functions,
        audit: Audit::default(),
    }
}

#[test]
fn the_cost_model_prices_what_one_order_used() {
    let run = run_of(1_000);
    let lines = cost::per_million_orders(&run, &|_| 128);
    let line = |item: &str| {
        lines
            .iter()
            .find(|l| l.item == item)
            .map(|l| l.usd_per_million_orders)
            .unwrap()
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    // 1.5 invocations per order at $0.20 per million.
    assert!(close(line(cost::LAMBDA_REQUEST.item), 1.5 * 0.20));
    // Durations round up to the millisecond: 1 × 10 ms + 0.5 × 20 ms = 20 ms at 1/8 GB.
    assert!(close(
        line(cost::LAMBDA_GB_SECOND.item),
        0.020 / 8.0 * 1e6 * cost::LAMBDA_GB_SECOND.usd
    ));
    // Two single publishes and a tenth of a batch request: SNS bills per request.
    assert!(close(line(cost::SNS_PUBLISH.item), 2.1 * 0.50));
    // A message in, and a receive and a delete per consumer batch: 1 + 2 × 0.5. The local
    // pollers' own requests (`test`) are not what Lambda's would cost, and are left out.
    assert!(close(line(cost::SQS_REQUEST.item), 2.0 * 0.40));
    assert!(close(line(cost::DYNAMODB_WRITE.item), 20.0 * 0.625));
    assert!(close(line(cost::DYNAMODB_READ.item), 3.0 * 0.125));
    assert!(close(
        line(cost::LOG_INGESTION.item),
        1024.0 / 1_073_741_824.0 * 1e6 * 0.50
    ));
    assert!(close(line(cost::API_REQUEST.item), 3.50));
}

#[test]
fn the_emulator_limit_is_its_busier_process_capacity_over_the_requests_an_order_asks_of_it() {
    let mut run = run_of(1_000);
    // Every service but DynamoDB: 102 099 requests in 8 CPU-seconds, 12 per order.
    let others = (2_000.0 + 100.0 + 99_999.0) / 8.0;
    assert!((run.emulator[0].capacity() - others).abs() < 1e-6);
    assert!((run.emulator[0].limit() - others / 12.0).abs() < 1e-6);
    // DynamoDB: 30 000 in 4 CPU-seconds, 8 per order: 937.5 orders/s, the busier one.
    assert!((run.limit() - 30_000.0 / 4.0 / 8.0).abs() < 1e-6);
    assert_eq!(run.emulator_cpu(), Duration::from_secs(12));
    // A process an order asks nothing of bounds nothing.
    run.emulator[1].requests_per_order = 0.0;
    assert!((run.limit() - others / 12.0).abs() < 1e-6);
}

#[test]
fn make_bench_times_its_builds_only_from_marks_it_has_just_left() {
    use proving::bench::own_time::{MARKS, builds};
    use std::time::UNIX_EPOCH;

    let dir = workspace_root().join("target/local-tests/bench-marks");
    std::fs::create_dir_all(&dir).unwrap();
    let mark = |seconds: [u64; 3]| {
        for (name, at) in MARKS.iter().zip(seconds) {
            std::fs::write(dir.join(name), format!("{at}\n")).unwrap();
        }
    };
    let at = |seconds: u64| UNIX_EPOCH + Duration::from_secs(seconds);

    mark([1_000, 1_330, 1_670]);
    assert_eq!(
        builds(&dir, at(1_671)),
        Some((Duration::from_secs(330), Duration::from_secs(340))),
        "marks in order, just left"
    );
    assert_eq!(
        builds(&dir, at(1_670 + 3_600)),
        None,
        "marks an hour old belong to an earlier make bench"
    );
    mark([1_000, 900, 1_670]);
    assert_eq!(builds(&dir, at(1_671)), None, "marks out of order");
    std::fs::remove_file(dir.join(MARKS[2])).unwrap();
    assert_eq!(
        builds(&dir, at(1_671)),
        None,
        "the arm64 build never finished"
    );
}

#[test]
fn each_choice_is_shown_against_the_build_as_committed() {
    use proving::bench::choices::{CHOICES, Measured, report};

    let measured = |choice, zip_bytes, binary_bytes| Measured {
        choice,
        zip_bytes,
        binary_bytes,
    };
    let page = report(
        &[
            measured(CHOICES[0], 2 << 20, 5 << 20),
            measured(CHOICES[1], 3 << 20, 10 << 20),
        ],
        "2 CPU cores",
        "2026-11-26",
    );
    assert!(
        page.contains("| the release build as committed | | 2.00 MB | 5.00 MB | |"),
        "{page}"
    );
    assert!(
        page.contains("| `opt-level = 3` | 3.00 MB (+50 %) | 10.00 MB (+100 %) |"),
        "{page}"
    );
}
