//! Starting and stopping the moto emulator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
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

/// A running moto server, stopped when dropped.
#[derive(Debug)]
pub struct Emulator {
    port: u16,
    child: Child,
    // The launcher exits when this pipe closes, even if we are killed without a Drop.
    _stdin: Option<ChildStdin>,
}

/// The repository root (the workspace this crate belongs to).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

impl Emulator {
    /// Starts moto on a free port: see [`Emulator::start_on`].
    pub async fn start() -> Result<Emulator, EmulatorError> {
        Self::start_on(0).await
    }

    /// Starts moto through `local/emulator/moto_launcher.py` with the project's `.venv`
    /// python (or `$MOTO_PYTHON`) on `port` of 127.0.0.1 (0: any free port), and waits
    /// until it serves.
    pub async fn start_on(port: u16) -> Result<Emulator, EmulatorError> {
        let root = workspace_root();
        let python = std::env::var("MOTO_PYTHON")
            .unwrap_or_else(|_| root.join(".venv/bin/python").to_string_lossy().into_owned());
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
                Ok(Emulator {
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

    /// The emulator's process id, for `make bench`'s CPU accounting.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The emulator's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint to give the SDK (`AWS_ENDPOINT_URL`).
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every AWS request the emulator has served, per caller (locally each function signs
    /// with its logical id as access key id) and operation (`dynamodb.PutItem`), since it
    /// started or since [`Emulator::reset_request_counts`].
    pub async fn request_counts(&self) -> Result<RequestCounts, String> {
        let url = format!("{}/_local/requests", self.endpoint_url());
        let response = crate::http_client::send(http::Method::GET, &url, &[], None).await?;
        serde_json::from_str(&response.body).map_err(|e| format!("{e}: {}", response.body))
    }

    /// The DynamoDB capacity units each caller's requests would consume on demand on
    /// AWS (`{"read": …, "write": …}`), since the counts were last reset: the cost
    /// model's DynamoDB input.
    pub async fn capacity_units(&self) -> Result<CapacityUnits, String> {
        let url = format!("{}/_local/capacity-units", self.endpoint_url());
        let response = crate::http_client::send(http::Method::GET, &url, &[], None).await?;
        serde_json::from_str(&response.body).map_err(|e| format!("{e}: {}", response.body))
    }

    /// Starts counting requests (and capacity units) from zero.
    pub async fn reset_request_counts(&self) -> Result<(), String> {
        let url = format!("{}/_local/requests", self.endpoint_url());
        crate::http_client::send(http::Method::DELETE, &url, &[], None)
            .await
            .map(|_| ())
    }

    /// The emulator's fault injection, for the reliability runs.
    pub fn faults(&self) -> FaultClient {
        FaultClient::new(&self.endpoint_url())
    }

    /// SDK configuration for the emulator: its endpoint, the local region and dummy
    /// credentials (moto accepts any).
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint_url())
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
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint_url)
        .http_client(shared::aws::https_client())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key_id,
            "test",
            None,
            None,
            "local",
        )))
        .build()
}

/// The emulator process frozen with SIGSTOP: every connection to it, the functions', the
/// host's pollers' and the run's own, hangs until it is resumed, as during a host or
/// network stall. Unlike stopping moto, which would lose its in-memory state, no state is
/// lost: the fault is the stall itself. Dropping the guard sends SIGCONT, so an early
/// return or a panic never leaves the emulator frozen.
#[derive(Debug)]
pub struct Frozen {
    pid: u32,
}

impl Frozen {
    /// Sends SIGSTOP to the emulator process `pid` (from [`Emulator::pid`]).
    pub fn freeze(pid: u32) -> std::io::Result<Self> {
        crate::signal::send("-STOP", pid)?;
        Ok(Self { pid })
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = crate::signal::send("-CONT", self.pid);
    }
}

/// Asks the emulator at an endpoint to fail the functions' requests (the host's pollers
/// and the runs' own checks are never affected): the reliability runs' faults.
#[derive(Debug, Clone)]
pub struct FaultClient {
    url: String,
}

impl FaultClient {
    /// The fault injection of the emulator at `endpoint_url`.
    pub fn new(endpoint_url: &str) -> Self {
        Self {
            url: format!("{endpoint_url}/_local/faults"),
        }
    }

    /// Makes every function's AWS requests answer 503 Service Unavailable for `seconds`,
    /// as if the services were down. The emulator's state survives, as AWS's would;
    /// stopping moto itself would lose it, which no real outage does.
    pub async fn make_unavailable(&self, seconds: f64) -> Result<(), String> {
        self.ask(serde_json::json!({ "unavailable_seconds": seconds }))
            .await
            .map(|_| ())
    }

    /// Makes `rate` (0–1) of every function's AWS requests answer the service's
    /// throttling error for `seconds`.
    pub async fn throttle(&self, rate: f64, seconds: f64) -> Result<(), String> {
        self.ask(serde_json::json!({ "throttle_rate": rate, "throttle_seconds": seconds }))
            .await
            .map(|_| ())
    }

    /// How many function requests the faults failed so far, by fault (`unavailable`,
    /// `throttled`).
    pub async fn injected(&self) -> Result<BTreeMap<String, u64>, String> {
        let response = crate::http_client::send(http::Method::GET, &self.url, &[], None).await?;
        serde_json::from_str(&response.body).map_err(|e| format!("{e}: {}", response.body))
    }

    async fn ask(&self, ask: serde_json::Value) -> Result<String, String> {
        crate::http_client::send(
            http::Method::POST,
            &self.url,
            &[("content-type", "application/json")],
            Some(ask.to_string()),
        )
        .await
        .map(|response| response.body)
    }
}
