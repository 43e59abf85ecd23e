//! `make bench`: what Rust buys on Lambda, measured in one run and written to
//! `docs/performance.md` next to each goal.
//!
//! On one local host built from the release binaries it measures, in this order:
//! - [`requests`]: the AWS requests each function makes per order, on the happy path and
//!   on every failure path;
//! - [`cold_start`]: each function's init time, next to a hello-world `lambda_runtime`
//!   binary (the floor) and to the same init in Python with boto3;
//! - [`throughput`]: orders per second through the pipeline against the emulator's limit,
//!   and each function's peak memory, invocations and durations;
//! - [`package`]: the zipped arm64 packages `cargo lambda` built;
//! - [`own_time`]: how long `make bench` itself took, builds included;
//!
//! then [`cost`] turns the measurements into a price per million orders and [`report`]
//! writes the page. Timings are never asserted in tests: they depend on the machine.
//!
//! [`choices`] is `make bench-choices`: a build per release-profile choice, too slow for
//! every run, into `docs/release-profile.md`.

pub mod choices;
pub mod cold_start;
pub mod cost;
pub mod own_time;
pub mod package;
pub mod report;
pub mod requests;
pub mod throughput;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::audit::Stores;
use emulator::{RequestCounts, workspace_root};
use lambda_host::logs::Logs;
use lambda_host::queues::Redelivery;
use lambda_host::runtime::{FunctionSpec, command};
use lambda_host::{Host, HostError, HostOptions};
use package::Package;
use requests::PathRequests;
use throughput::Throughput;

/// The bench could not run.
#[derive(Debug, thiserror::Error)]
#[error("bench: {0}")]
pub struct BenchError(pub String);

impl From<String> for BenchError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<HostError> for BenchError {
    fn from(error: HostError) -> Self {
        Self(error.to_string())
    }
}

/// How much to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Cold starts per Rust binary.
    pub cold_starts: usize,
    /// Cold starts per Python init (each takes about a second).
    pub python_cold_starts: usize,
    /// Orders in the throughput run.
    pub orders: usize,
    /// Orders in flight at once in the throughput run.
    pub concurrency: usize,
    /// The binaries timed: the functions and the floor for this machine, built with the
    /// `timing` profile (the release profile without LTO, see Cargo.toml).
    pub binaries: PathBuf,
    /// The target directory holding `lambda/<binary>/bootstrap.zip`.
    pub target: PathBuf,
    /// The Python with boto3 (the project's `.venv`).
    pub python: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        let root = workspace_root();
        Self {
            cold_starts: 21,
            python_cold_starts: 5,
            orders: 300,
            concurrency: 32,
            binaries: root.join("target/timing"),
            target: root.join("target"),
            python: root.join(".venv/bin/python"),
        }
    }
}

/// One function's cold starts, in milliseconds, sorted.
#[derive(Debug, Clone)]
pub struct ColdStarts {
    /// The function's logical id.
    pub function: String,
    /// The Rust binary's.
    pub rust_ms: Vec<f64>,
    /// The median of each init phase the Rust binary reported, in milliseconds, in the
    /// order it reported them (`aws_adapters::init_phases`).
    pub phases_ms: Vec<(String, f64)>,
    /// The Rust binary's with no CA certificates to load (`SSL_CERT_FILE` an empty file,
    /// an empty `SSL_CERT_DIR`): the difference is what loading this machine's trust store costs.
    pub without_ca_ms: Vec<f64>,
    /// The same init in Python with boto3.
    pub python_ms: Vec<f64>,
    /// The boto3 clients that init creates (the services the function called).
    pub python_clients: Vec<String>,
}

/// Everything measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// The hello-world floor's cold starts.
    pub floor_ms: Vec<f64>,
    /// Per function.
    pub cold_starts: Vec<ColdStarts>,
    /// Zipped arm64 packages, per function, then the floor's.
    pub packages: Vec<Package>,
    /// The floor's package, if it was built.
    pub floor_package: Option<Package>,
    /// Requests per path.
    pub paths: Vec<PathRequests>,
    /// The throughput run.
    pub throughput: Throughput,
    /// Each function's configured memory, in MB.
    pub memory_mb: BTreeMap<String, u64>,
    /// How long `make bench` took, if it started this run.
    pub own_time: Option<own_time::OwnTime>,
    /// The settings measured with.
    pub settings: Settings,
}

/// The binary that hello-world floor builds to.
pub const FLOOR_BINARY: &str = "hello-floor";

/// Runs every measurement.
pub async fn run(settings: Settings) -> Result<Results, BenchError> {
    let measuring = Instant::now();
    let builds = own_time::builds(&settings.target.join("bench"), SystemTime::now());
    let (host, stores) = start(&settings.binaries).await?;
    println!("requests per order, path by path...");
    let paths = requests::count_paths(&host, &stores).await?;

    let mut specs: Vec<FunctionSpec> = host.functions().map(|f| f.spec().clone()).collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    println!("cold starts: the floor...");
    let floor = FunctionSpec {
        binary: settings.binaries.join(FLOOR_BINARY),
        ..specs[0].clone()
    };
    let floor_ms = cold_start::time_cold_starts(
        FLOOR_BINARY,
        |api| command(&floor, api),
        settings.cold_starts,
    )
    .await?;
    let empty_dir = settings.target.join("bench/empty-ca-dir");
    std::fs::create_dir_all(&empty_dir).map_err(|e| BenchError(e.to_string()))?;
    // A bundle that holds no certificate: a file, as the cold start's own check insists
    // (`aws_adapters::runtime`), so `/dev/null` will not do.
    let empty_bundle = settings.target.join("bench/empty-ca-bundle.pem");
    std::fs::write(&empty_bundle, b"").map_err(|e| BenchError(e.to_string()))?;
    let mut cold_starts = Vec::new();
    for spec in &specs {
        println!("cold starts: {}...", spec.name);
        let (rust_ms, phases_ms) = cold_start::time_cold_starts_by_phase(
            &spec.name,
            |api| command(spec, api),
            settings.cold_starts,
        )
        .await?;
        let mut without_ca = spec.clone();
        without_ca.env.insert(
            "SSL_CERT_FILE".into(),
            empty_bundle.to_string_lossy().into_owned(),
        );
        without_ca.env.insert(
            "SSL_CERT_DIR".into(),
            empty_dir.to_string_lossy().into_owned(),
        );
        let without_ca_ms = cold_start::time_cold_starts(
            &format!("{} (no CA certificates)", spec.name),
            |api| command(&without_ca, api),
            settings.cold_starts,
        )
        .await?;
        let clients = services_called(&paths, &spec.name);
        let mut python = FunctionSpec {
            binary: settings.python.clone(),
            args: vec![
                workspace_root()
                    .join("local/tools/boto3_init.py")
                    .to_string_lossy()
                    .into_owned(),
            ],
            ..spec.clone()
        };
        python.env.insert("BENCH_CLIENTS".into(), clients.join(","));
        if clients.iter().any(|c| c == "secretsmanager")
            && let Some((_, arn)) = spec.env.iter().find(|(k, _)| k.ends_with("_SECRET_ARN"))
        {
            python.env.insert("BENCH_SECRET_ARN".into(), arn.clone());
        }
        let python_ms = cold_start::time_cold_starts(
            &format!("{} (Python)", spec.name),
            |api| command(&python, api),
            settings.python_cold_starts,
        )
        .await?;
        cold_starts.push(ColdStarts {
            function: spec.name.clone(),
            rust_ms,
            phases_ms,
            without_ca_ms,
            python_ms,
            python_clients: clients,
        });
    }

    drop(stores);
    drop(host);

    // A fresh host, so the audit after the run sees only the run's orders.
    println!(
        "throughput: {} orders, {} at a time...",
        settings.orders, settings.concurrency
    );
    let (host, stores) = start(&settings.binaries).await?;
    let throughput =
        throughput::measure(&host, &stores, settings.orders, settings.concurrency).await?;
    for check in throughput.audit.checks.iter().filter(|c| !c.holds) {
        println!("audit FAILED: {}: {}", check.invariant, check.detail);
    }

    let binaries: Vec<(String, String)> = specs
        .iter()
        .map(|s| {
            let binary = s
                .binary
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (s.name.clone(), binary)
        })
        .collect();
    let packages = package::packages(&settings.target, &binaries)?;
    let floor_package = package::packages(
        &settings.target,
        &[("hello world".into(), FLOOR_BINARY.into())],
    )
    .ok()
    .and_then(|mut p| p.pop());
    let memory_mb = specs
        .iter()
        .map(|s| (s.name.clone(), s.memory_mb))
        .collect();
    Ok(Results {
        floor_ms,
        cold_starts,
        packages,
        floor_package,
        paths,
        throughput,
        memory_mb,
        own_time: builds.map(|(timing_build, arm64_build)| own_time::OwnTime {
            timing_build,
            arm64_build,
            measuring: measuring.elapsed(),
        }),
        settings,
    })
}

/// How soon a failed message comes back in the bench (see [`start`]).
const REDELIVERY: Duration = Duration::from_secs(1);

/// Starts a local host on the function binaries in `binaries`, and the bench's view of its
/// stores. The bench's own reads sign as `audit`, so the emulator's request counts tell
/// them apart from the functions' and the event source pollers' (`test`).
pub async fn start(binaries: &Path) -> Result<(Host, Arc<Stores>), BenchError> {
    let host = Host::start(
        HostOptions {
            binaries: binaries.to_path_buf(),
            api_port: 0,
            // The throughput mix has a flaky card whose retries would otherwise wait out
            // the queue's visibility timeout: the run would time that wait, not the
            // pipeline. Shortened here, as the reliability runs do.
            redelivery: Redelivery::After(REDELIVERY),
            // As in `make reliability`: DynamoDB in an emulator process of its own, so
            // the emulator has both cores and the bound is the busier process's.
            dynamodb_apart: true,
            ..HostOptions::default()
        },
        Logs::default(),
    )
    .await?;
    let sdk = host.emulator.sdk_config_signed_as("audit");
    let stores = Stores::watch(&sdk, &host.stack)
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    Ok((host, Arc::new(stores)))
}

/// Waits until the functions have made no AWS request for `quiet`, polling the emulator's
/// counts, and answers every caller's counts as they stood at the functions' last request,
/// together with what `at_change` read at that moment (the throughput run reads CPU
/// times). Fails after `limit`: a pipeline that never goes quiet is a finding, not a
/// measurement.
pub(crate) async fn until_functions_still<T>(
    host: &Host,
    quiet: Duration,
    limit: Duration,
    at_change: impl Fn() -> T,
) -> Result<(RequestCounts, T), BenchError> {
    let functions: BTreeSet<String> = host.functions().map(|f| f.name().to_owned()).collect();
    let of_functions = |counts: &RequestCounts| -> RequestCounts {
        counts
            .iter()
            .filter(|(caller, _)| functions.contains(*caller))
            .map(|(caller, ops)| (caller.clone(), ops.clone()))
            .collect()
    };
    let deadline = Instant::now() + limit;
    let mut last: Option<(RequestCounts, T)> = None;
    let mut still_since = Instant::now();
    loop {
        let counts = host
            .emulator
            .request_counts()
            .await
            .map_err(BenchError::from)?;
        let unchanged = last
            .as_ref()
            .is_some_and(|(before, _)| of_functions(before) == of_functions(&counts));
        if !unchanged {
            last = Some((counts, at_change()));
            still_since = Instant::now();
        } else if still_since.elapsed() >= quiet
            && let Some(settled) = last
        {
            return Ok(settled);
        }
        if Instant::now() >= deadline {
            return Err(BenchError(format!(
                "the pipeline did not go quiet within {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The AWS services a function called on any path, as boto3 names them.
fn services_called(paths: &[PathRequests], function: &str) -> Vec<String> {
    let services: BTreeSet<String> = paths
        .iter()
        .filter_map(|p| p.counts.get(function))
        .flat_map(|ops| ops.keys())
        .filter_map(|op| op.split_once('.').map(|(service, _)| service.to_owned()))
        .collect();
    services.into_iter().collect()
}
