//! The local cloud's AWS: the moto emulator, and template.yaml provisioned on it.
//!
//! - this crate's root starts moto on a free loopback port (`moto_launcher.py`, beside this
//!   crate), counts what it is asked, injects the faults AWS can give and moto cannot, and
//!   stops it again;
//! - [`template`] reads template.yaml as SAM's own translator turns it into CloudFormation;
//! - [`intrinsics`] resolves its `Ref`, `Fn::GetAtt` and `Fn::Sub` to local names;
//! - [`provision`] creates its tables, topics, queues and subscriptions, and reads back
//!   what the Lambda host runs: functions, event source mappings, API routes;
//! - [`filter`] is Lambda's and SNS's filter grammar, refused loudly where unknown;
//! - [`http_client`] and [`signal`] are the small helpers the crates above share.
//!
//! The template is the only source of truth: nothing here names a table, a queue or a
//! function of this project. The Lambda host (`lambda-host`) builds on this crate, and the
//! proving tools (`proving`) on both.

pub mod filter;
pub mod http_client;
pub mod intrinsics;
pub mod provision;
pub mod signal;
pub mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The region every local resource lives in.
pub const REGION: &str = "us-east-1";

/// moto's default account id: what local ARNs contain.
pub const ACCOUNT_ID: &str = "123456789012";

/// How long the emulator may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests per caller, then per operation (`dynamodb.PutItem`).
pub type RequestCounts =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>;

/// DynamoDB capacity units per caller: `read` and `write`.
pub type CapacityUnits =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>;

/// Starting the emulator failed.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The launcher could not be spawned (is `.venv` installed? run `make venv`).
    #[error("cannot start the emulator with {python}: {source} (run `make venv`)")]
    Spawn {
        /// The python interpreter tried.
        python: String,
        /// Why spawning failed.
        source: std::io::Error,
    },
    /// The launcher exited or said nothing sensible before it was ready.
    #[error("the emulator did not start: {0}")]
    NotReady(String),
}

/// A running moto server, stopped when dropped: one launcher process, or two when
/// DynamoDB runs apart (see [`Emulator::start_with_dynamodb_apart`]).
#[derive(Debug)]
pub struct Emulator {
    main: Process,
    /// DynamoDB and DynamoDB Streams, when they run in a process of their own.
    dynamodb: Option<Process>,
}

/// One moto launcher process.
#[derive(Debug)]
struct Process {
    port: u16,
    child: Child,
    // The launcher exits when this pipe closes, even if we are killed without a Drop.
    _stdin: Option<ChildStdin>,
}

/// The SDK's service ids that go to the DynamoDB process when it runs apart: a table
/// and its stream live in the same moto backend.
const DYNAMODB_SERVICE_IDS: [&str; 2] = ["DynamoDB", "DynamoDB Streams"];

/// Whether a counted request (a [`RequestCounts`] key, `dynamodb.PutItem`) is one the
/// DynamoDB process serves when it runs apart: tables and their streams both sign as
/// `dynamodb`.
pub fn served_by_dynamodb_process(counted: &str) -> bool {
    counted.starts_with("dynamodb.")
}

/// The repository root (the workspace this crate belongs to: it lives in `local/emulator/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The Python the local cloud runs its tools with (the emulator, SAM's translator): the
/// project's `.venv`, or `$MOTO_PYTHON` (a copy of the repository without a `.venv` of
/// its own, as the scaffolding tests make, names the original's).
pub fn project_python() -> PathBuf {
    std::env::var_os("MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

impl Emulator {
    /// Starts moto on a free port: see [`Emulator::start_on`].
    pub async fn start() -> Result<Emulator, EmulatorError> {
        Self::start_on(0).await
    }

    /// Starts moto through `local/emulator/moto_launcher.py` with the project's `.venv`
    /// python (or `$MOTO_PYTHON`) on `port` of 127.0.0.1 (0: any free port), and waits
    /// until it serves. One process serves every service at one endpoint, which is what
    /// `make dev`, the demo and the labs show.
    pub async fn start_on(port: u16) -> Result<Emulator, EmulatorError> {
        Ok(Emulator {
            main: Process::start_on(port).await?,
            dynamodb: None,
        })
    }

    /// Like [`Emulator::start_on`], with DynamoDB (and its streams) served by a second
    /// moto process on a free port. moto answers every request under one Python
    /// interpreter lock, so one process can use one core; under the reliability runs'
    /// load that core is the bottleneck while the other waits. DynamoDB takes about
    /// three quarters of the pipeline's requests and nothing in moto ties it to the other
    /// services (SNS delivers to SQS in-process, so those two stay together). The SDK
    /// finds the second endpoint as `AWS_ENDPOINT_URL_DYNAMODB`, as it would on AWS with
    /// a service-specific endpoint.
    pub async fn start_with_dynamodb_apart(port: u16) -> Result<Emulator, EmulatorError> {
        let (main, dynamodb) = tokio::try_join!(Process::start_on(port), Process::start_on(0))?;
        Ok(Emulator {
            main,
            dynamodb: Some(dynamodb),
        })
    }

    fn processes(&self) -> impl Iterator<Item = &Process> {
        std::iter::once(&self.main).chain(self.dynamodb.as_ref())
    }

    /// The emulator's process ids, for `make bench`'s CPU accounting and the
    /// reliability runs' freeze.
    pub fn pids(&self) -> Vec<u32> {
        self.processes().filter_map(|p| p.child.id()).collect()
    }

    /// Whether DynamoDB runs in a process of its own: then [`Emulator::pids`] names the
    /// process of every other service first, DynamoDB's second.
    pub fn runs_dynamodb_apart(&self) -> bool {
        self.dynamodb.is_some()
    }

    /// The emulator's port on 127.0.0.1 (every service but DynamoDB's, when it runs
    /// apart).
    pub fn port(&self) -> u16 {
        self.main.port
    }

    /// The endpoint to give the SDK (`AWS_ENDPOINT_URL`).
    pub fn endpoint_url(&self) -> String {
        self.main.endpoint_url()
    }

    /// DynamoDB's own endpoint, when it runs apart (`AWS_ENDPOINT_URL_DYNAMODB`).
    pub fn dynamodb_endpoint_url(&self) -> Option<String> {
        self.dynamodb.as_ref().map(Process::endpoint_url)
    }

    /// The environment that points a function's SDK at the emulator.
    pub fn endpoint_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([("AWS_ENDPOINT_URL".to_owned(), self.endpoint_url())]);
        if let Some(url) = self.dynamodb_endpoint_url() {
            env.insert("AWS_ENDPOINT_URL_DYNAMODB".into(), url.clone());
            env.insert("AWS_ENDPOINT_URL_DYNAMODB_STREAMS".into(), url);
        }
        env
    }

    /// Every AWS request the emulator has served, per caller (locally each function signs
    /// with its logical id as access key id) and operation (`dynamodb.PutItem`), since it
    /// started or since [`Emulator::reset_request_counts`].
    pub async fn request_counts(&self) -> Result<RequestCounts, String> {
        self.summed("/_local/requests").await
    }

    /// The DynamoDB capacity units each caller's requests would consume on demand on
    /// AWS (`{"read": …, "write": …}`), since the counts were last reset: the cost
    /// model's DynamoDB input.
    pub async fn capacity_units(&self) -> Result<CapacityUnits, String> {
        self.summed("/_local/capacity-units").await
    }

    /// A per-caller tally at `path`, added up over the emulator's processes.
    async fn summed<V>(&self, path: &str) -> Result<BTreeMap<String, BTreeMap<String, V>>, String>
    where
        V: serde::de::DeserializeOwned + Default + std::ops::AddAssign,
    {
        let mut sum: BTreeMap<String, BTreeMap<String, V>> = BTreeMap::new();
        for process in self.processes() {
            let url = format!("{}{path}", process.endpoint_url());
            let theirs: BTreeMap<String, BTreeMap<String, V>> = get_json(&url).await?;
            for (caller, tally) in theirs {
                let mine = sum.entry(caller).or_default();
                for (key, n) in tally {
                    *mine.entry(key).or_default() += n;
                }
            }
        }
        Ok(sum)
    }

    /// Starts counting requests (and capacity units) from zero.
    pub async fn reset_request_counts(&self) -> Result<(), String> {
        for process in self.processes() {
            let url = format!("{}/_local/requests", process.endpoint_url());
            crate::http_client::send(http::Method::DELETE, &url, &[], None).await?;
        }
        Ok(())
    }

    /// The emulator's fault injection, for the reliability runs.
    pub fn faults(&self) -> FaultClient {
        FaultClient {
            urls: self
                .processes()
                .map(|p| format!("{}/_local/faults", p.endpoint_url()))
                .collect(),
        }
    }

    /// SDK configuration for the emulator: its endpoints, the local region and dummy
    /// credentials (moto accepts any).
    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_signed_as("test")
    }

    /// [`Emulator::sdk_config`], signing with `access_key_id` (see
    /// [`sdk_config_signed_as`]).
    pub fn sdk_config_signed_as(&self, access_key_id: &str) -> SdkConfig {
        let mut builder = config_builder(&self.endpoint_url(), access_key_id);
        if let Some(url) = self.dynamodb_endpoint_url() {
            builder.set_service_config(Some(DynamoDbApart { url }));
        }
        builder.build()
    }
}

/// Answers the SDK's per-service endpoint lookup (what `AWS_ENDPOINT_URL_DYNAMODB` does
/// for a function) for DynamoDB and its streams; every other service takes the
/// configuration's general endpoint.
#[derive(Debug)]
struct DynamoDbApart {
    url: String,
}

impl LoadServiceConfig for DynamoDbApart {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        (key.env() == "AWS_ENDPOINT_URL" && DYNAMODB_SERVICE_IDS.contains(&key.service_id()))
            .then(|| self.url.clone())
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let response = crate::http_client::send(http::Method::GET, url, &[], None).await?;
    serde_json::from_str(&response.body).map_err(|e| format!("{e}: {}", response.body))
}

impl Process {
    async fn start_on(port: u16) -> Result<Process, EmulatorError> {
        let root = workspace_root();
        let python = project_python().to_string_lossy().into_owned();
        let mut child = Command::new(&python)
            .arg(root.join("local/emulator/moto_launcher.py"))
            .env("MOTO_PORT", port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| EmulatorError::Spawn {
                python: python.clone(),
                source,
            })?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| EmulatorError::NotReady("no stdout".into()))?;
        let ready = async {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if let Some(port) = line.strip_prefix("READY ") {
                    return port.trim().parse::<u16>().ok();
                }
            }
            None
        };
        match tokio::time::timeout(START_TIMEOUT, ready).await {
            Ok(Some(port)) => {
                // Keep draining stderr so moto never blocks on a full pipe.
                if let Some(mut stderr) = child.stderr.take() {
                    tokio::spawn(async move {
                        let mut sink = Vec::new();
                        loop {
                            sink.clear();
                            match stderr.read_buf(&mut sink).await {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {}
                            }
                        }
                    });
                }
                Ok(Process {
                    port,
                    child,
                    _stdin: stdin,
                })
            }
            Ok(None) | Err(_) => {
                let _ = child.start_kill();
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        pipe.read_to_string(&mut stderr),
                    )
                    .await;
                }
                Err(EmulatorError::NotReady(stderr))
            }
        }
    }

    fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// SDK configuration for an emulator at `endpoint_url`.
pub fn sdk_config_for(endpoint_url: &str) -> SdkConfig {
    sdk_config_signed_as(endpoint_url, "test")
}

/// SDK configuration for an emulator at `endpoint_url`, signing with `access_key_id`: the
/// emulator counts requests per access key, so a caller that must not be mistaken for the
/// host's pollers (`test`) or a function signs with its own.
pub fn sdk_config_signed_as(endpoint_url: &str, access_key_id: &str) -> SdkConfig {
    config_builder(endpoint_url, access_key_id).build()
}

fn config_builder(endpoint_url: &str, access_key_id: &str) -> aws_types::sdk_config::Builder {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint_url)
        .http_client(aws_adapters::sdk::https_client())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key_id,
            "test",
            None,
            None,
            "local",
        )))
}

/// The emulator process frozen with SIGSTOP: every connection to it, the functions', the
/// host's pollers' and the run's own, hangs until it is resumed, as during a host or
/// network stall. Unlike stopping moto, which would lose its in-memory state, no state is
/// lost: the fault is the stall itself. Dropping the guard sends SIGCONT, so an early
/// return or a panic never leaves the emulator frozen.
#[derive(Debug)]
pub struct Frozen {
    pids: Vec<u32>,
}

impl Frozen {
    /// Sends SIGSTOP to the emulator's processes `pids` (from [`Emulator::pids`]). If
    /// one cannot be stopped, those already stopped are resumed.
    pub fn freeze(pids: &[u32]) -> std::io::Result<Self> {
        let mut frozen = Self { pids: Vec::new() };
        for &pid in pids {
            crate::signal::send("-STOP", pid)?;
            frozen.pids.push(pid);
        }
        Ok(frozen)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let _ = crate::signal::send("-CONT", pid);
        }
    }
}

/// A DynamoDB failure that AWS produces under contention and the emulator, which
/// serialises DynamoDB, never would: without injecting it, the code that handles it
/// never runs before production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamoDbFault {
    /// A `TransactWriteItems` cancelled because another transaction holds one of its
    /// items: `TransactionCanceledException`, one reason `TransactionConflict`, the
    /// others `None`. The SDK does not retry it.
    TransactionConflict,
    /// A `TransactWriteItems` cancelled for throttling, as DynamoDB reports it inside a
    /// transaction: one reason `ThrottlingError`, the others `None`.
    TransactionThrottled,
    /// A `PutItem`, `UpdateItem` or `DeleteItem` answered
    /// `ProvisionedThroughputExceededException`, which the SDK retries.
    WriteThrottled,
}

impl DynamoDbFault {
    /// The fault's name on the emulator's fault endpoint, and the key
    /// [`FaultClient::injected`] counts it under.
    pub fn name(self) -> &'static str {
        match self {
            DynamoDbFault::TransactionConflict => "transaction_conflict",
            DynamoDbFault::TransactionThrottled => "transaction_throttle",
            DynamoDbFault::WriteThrottled => "write_throttle",
        }
    }
}

/// Asks the emulator (each of its processes) to fail the functions' requests (the host's
/// pollers and the runs' own checks are never affected): the reliability runs' faults.
#[derive(Debug, Clone)]
pub struct FaultClient {
    /// Every emulator process's fault endpoint: a fault holds for all of them.
    urls: Vec<String>,
}

impl FaultClient {
    /// Makes every function's AWS requests answer 503 Service Unavailable for `seconds`,
    /// as if the services were down. The emulator's state survives, as AWS's would;
    /// stopping moto itself would lose it, which no real outage does.
    pub async fn make_unavailable(&self, seconds: f64) -> Result<(), String> {
        self.ask(serde_json::json!({ "unavailable_seconds": seconds }))
            .await
    }

    /// Makes `rate` (0–1) of every function's AWS requests answer the service's
    /// throttling error for `seconds`.
    pub async fn throttle(&self, rate: f64, seconds: f64) -> Result<(), String> {
        self.ask(serde_json::json!({ "throttle_rate": rate, "throttle_seconds": seconds }))
            .await
    }

    /// The next `count` matching requests signed by `caller` fail with `fault`: a test
    /// can make exactly the request it means fail, and no other. Every process is asked;
    /// only the one serving DynamoDB ever sees a matching request.
    pub async fn fail_next(
        &self,
        fault: DynamoDbFault,
        caller: &str,
        count: u32,
    ) -> Result<(), String> {
        self.ask(serde_json::json!({
            fault.name(): { "count": count, "callers": [caller] }
        }))
        .await
    }

    /// `rate` (0–1) of matching requests from every function fail with `fault` for
    /// `seconds`, as contention strikes on AWS: for the reliability runs. A rate of 0
    /// ends it.
    pub async fn fail_share(
        &self,
        fault: DynamoDbFault,
        rate: f64,
        seconds: f64,
    ) -> Result<(), String> {
        self.ask(serde_json::json!({
            fault.name(): { "rate": rate, "seconds": seconds }
        }))
        .await
    }

    /// How many function requests the faults failed so far, by fault (`unavailable`,
    /// `throttled`, and each [`DynamoDbFault::name`]).
    pub async fn injected(&self) -> Result<BTreeMap<String, u64>, String> {
        let mut injected = BTreeMap::new();
        for url in &self.urls {
            let theirs: BTreeMap<String, u64> = get_json(url).await?;
            for (fault, n) in theirs {
                *injected.entry(fault).or_default() += n;
            }
        }
        Ok(injected)
    }

    /// Sends `ask` to every process; one that refuses it (a malformed fault) is an error
    /// rather than a fault silently never injected.
    async fn ask(&self, ask: serde_json::Value) -> Result<(), String> {
        for url in &self.urls {
            let response = crate::http_client::send(
                http::Method::POST,
                url,
                &[("content-type", "application/json")],
                Some(ask.to_string()),
            )
            .await?;
            if response.status != 200 {
                return Err(format!("{url} refused {ask}: {}", response.body));
            }
        }
        Ok(())
    }
}
