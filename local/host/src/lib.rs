//! The local Lambda host: template.yaml's whole topology on a laptop.
//!
//! It starts the emulator, provisions the template, runs every function's real
//! `bootstrap` binary behind the Lambda Runtime API ([`runtime`]), drives every event
//! source mapping (streams and queues) with its template settings, and serves the `Api`
//! events over HTTP ([`api`]) behind API Gateway's edge ([`edge`]). Nothing here names a
//! function, table or queue of this project: add them to the template and they run.
//!
//! - [`runtime`] is the Lambda Runtime API each function's process polls, and [`logs`]
//!   what the processes print;
//! - [`queues`] and [`streams`] are the SQS and DynamoDB stream event source mappings,
//!   [`pipeline`] drives them together for in-process handlers ([`invoke`]);
//! - [`chaos`] is what the reliability runs make those mappings do wrong on purpose.
//!
//! It builds on the emulator and its provisioning (the `emulator` crate).

pub mod api;
pub mod chaos;
pub mod edge;
pub mod invoke;
pub mod logs;
pub mod pipeline;
pub mod queues;
pub mod runtime;
pub mod streams;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_adapters::runtime::TRUST_STORE_VARIABLE;
use aws_config::SdkConfig;
use axum::serve::ListenerExt as _;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::chaos::Chaos;
use crate::invoke::Invoke;
use crate::queues::{QueuePoller, Redelivery};
use crate::streams::StreamPoller;
use edge::{Edge, EdgeError};
use emulator::intrinsics::scalar_text;
use emulator::provision::{ProvisionError, QueueMapping, Stack, provision};
use emulator::template::{Template, TemplateError};
use emulator::{Emulator, EmulatorError, REGION, workspace_root};
use logs::Logs;
use runtime::{FunctionHost, FunctionSpec};

/// Starting the host failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The emulator did not start.
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    /// The template could not be read.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The template could not be provisioned.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// The API definition could not be read.
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// A function's binary is missing (build first: `make build-local`).
    #[error("{function}: no binary at {path} (run `cargo build --bins`)")]
    MissingBinary {
        /// The function.
        function: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The API port is taken.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How to start the host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The template to run.
    pub template: PathBuf,
    /// Where the function binaries are (named as `BuildProperties.Binary`).
    pub binaries: PathBuf,
    /// Emulator port on 127.0.0.1 (0: any free port).
    pub emulator_port: u16,
    /// API port on 127.0.0.1 (0: any free port).
    pub api_port: u16,
    /// Overrides of the functions' executables (logical id -> command and arguments),
    /// for tests that need a function to misbehave.
    pub overrides: HashMap<String, (PathBuf, Vec<String>)>,
    /// Extra environment for every function (on top of the template's).
    pub extra_env: BTreeMap<String, String>,
    /// How the SQS mappings deliver: calm by default; duplicates and shuffled batches in
    /// the reliability runs.
    pub chaos: Arc<Chaos>,
    /// When a failed SQS message is delivered again: by default as on AWS, once its
    /// queue's `VisibilityTimeout` has passed. Tests of retries shorten it here, and
    /// only here ([`Redelivery::After`]); nothing else changes when messages come back.
    pub redelivery: Redelivery,
    /// API Gateway's edge in front of the local API (the default): the API definition's
    /// request validation and gateway responses, and a REST API's 403 for an unknown
    /// route, before any function runs. `false` sends every request on a route to its
    /// function: for tests of a function's own validation, which on AWS only requests
    /// the edge lets through reach.
    pub edge: bool,
    /// DynamoDB served by an emulator process of its own
    /// ([`Emulator::start_with_dynamodb_apart`]): the reliability runs' load needs both
    /// cores; `make dev` and the demo keep one endpoint for every service.
    pub dynamodb_apart: bool,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            template: Template::workspace_template(),
            binaries: workspace_root().join("target/debug"),
            emulator_port: 0,
            api_port: 3000,
            overrides: HashMap::new(),
            extra_env: BTreeMap::new(),
            chaos: Arc::new(Chaos::default()),
            redelivery: Redelivery::AsTheQueueSays,
            edge: true,
            dynamodb_apart: false,
        }
    }
}

/// Most processes of a function that neither reserves concurrency nor is bounded by its
/// mappings (the API's functions). Lambda would add environments while requests keep
/// coming; locally processes start on demand up to this many, enough for the
/// reliability runs' 32 requests in flight at the emulator's pace.
pub const MOST_PROCESSES_UNBOUNDED: usize = 8;

/// A running host. Dropping it stops the pollers, the functions and the emulator.
pub struct Host {
    /// The emulator (stopped on drop).
    pub emulator: Emulator,
    /// The provisioned resources.
    pub stack: Stack,
    /// SDK configuration pointing at the emulator.
    pub sdk: SdkConfig,
    /// Every line of output.
    pub logs: Logs,
    /// Where the API listens.
    pub api_address: SocketAddr,
    functions: HashMap<String, FunctionHost>,
    /// SQS messages handed to each function so far (every delivery, retries included).
    delivered: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    tasks: Vec<JoinHandle<()>>,
}

fn number(value: Option<Value>) -> Option<u64> {
    value.and_then(|v| v.as_u64().or_else(|| scalar_text(&v).parse().ok()))
}

impl Host {
    /// Starts everything.
    pub async fn start(options: HostOptions, logs: Logs) -> Result<Host, HostError> {
        // SAM's translation first: a template SAM refuses stops here, before anything
        // starts, with SAM's own words.
        let template = Template::translate(&options.template)?;
        let emulator = if options.dynamodb_apart {
            Emulator::start_with_dynamodb_apart(options.emulator_port).await?
        } else {
            Emulator::start_on(options.emulator_port).await?
        };
        let sdk = emulator.sdk_config();
        let stack = provision(&sdk, &template).await?;

        let queue_mappings = stack.queue_mappings();
        let mut functions = HashMap::new();
        for name in stack.functions() {
            let resource = &template.resources[&name];
            let binary_name = resource
                .metadata
                .get("BuildProperties")
                .and_then(|p| p.get("Binary"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| name.to_lowercase());
            let (binary, args) = match options.overrides.get(&name) {
                Some((command, args)) => (command.clone(), args.clone()),
                None => (options.binaries.join(&binary_name), Vec::new()),
            };
            if !binary.exists() {
                return Err(HostError::MissingBinary {
                    function: name,
                    path: binary,
                });
            }
            let mut env = stack.function_env(&name)?;
            env.extend(emulator.endpoint_env());
            env.insert("AWS_REGION".into(), REGION.into());
            env.insert("AWS_DEFAULT_REGION".into(), REGION.into());
            // Each function signs with its own access key id, its logical id, so the
            // emulator can count every function's AWS requests (`/_local/requests`).
            env.insert("AWS_ACCESS_KEY_ID".into(), name.clone());
            env.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
            env.extend(options.extra_env.clone());
            local_trust_store(&mut env);
            if let Ok(Some(logging)) = stack.function_property(&name, "LoggingConfig") {
                if let Some(level) = logging.get("ApplicationLogLevel") {
                    env.insert("AWS_LAMBDA_LOG_LEVEL".into(), scalar_text(level));
                }
                if let Some(format) = logging.get("LogFormat") {
                    env.insert("AWS_LAMBDA_LOG_FORMAT".into(), scalar_text(format));
                }
            }
            let timeout = number(stack.function_property(&name, "Timeout")?).unwrap_or(3);
            let memory_mb = number(stack.function_property(&name, "MemorySize")?).unwrap_or(128);
            let reserved = number(stack.function_property(&name, "ReservedConcurrentExecutions")?);
            let mapped: usize = queue_mappings
                .iter()
                .filter(|m| m.function == name)
                .map(QueueMapping::pollers)
                .sum();
            let max_processes = reserved
                .map(|r| r as usize)
                .unwrap_or_else(|| mapped.max(MOST_PROCESSES_UNBOUNDED));
            let spec = FunctionSpec {
                name: name.clone(),
                binary,
                args,
                env,
                timeout: Duration::from_secs(timeout),
                memory_mb,
                max_processes,
            };
            functions.insert(name, FunctionHost::new(spec, logs.clone()));
        }

        let mut tasks = Vec::new();
        for mapping in stack.stream_mappings() {
            let Some(function) = functions.get(&mapping.function).cloned() else {
                continue;
            };
            let mut poller = StreamPoller::new(&sdk, mapping);
            let logs = logs.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match poller.poll_once(&function).await {
                        // Lambda reads each shard four times a second.
                        Ok(report) if report.delivered == 0 && report.pending_retry == 0 => {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Ok(report) if report.pending_retry > 0 => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Ok(_) => {}
                        Err(error) => {
                            logs.push("host", serde_json::json!({"level": "WARN", "message": "stream poll failed", "error": error.to_string()}).to_string());
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }));
        }
        let delivered = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u64>::new()));
        for mapping in queue_mappings {
            let Some(function) = functions.get(&mapping.function).cloned() else {
                continue;
            };
            for _ in 0..mapping.pollers() {
                let poller = QueuePoller::new(&sdk, mapping.clone())
                    .redelivery(options.redelivery)
                    .chaos(options.chaos.clone());
                let function = function.clone();
                let logs = logs.clone();
                let delivered = delivered.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        match poller.poll_once(&function).await {
                            // The receive long-polls, so an empty answer already waited.
                            Ok(report) if report.delivered == 0 => {}
                            Ok(report) => {
                                // A message left unsettled comes back after the queue's
                                // visibility timeout: say which and why, so a message
                                // handled twice or retried late is no mystery.
                                for failure in &report.unsettled {
                                    logs.push("host", serde_json::json!({"level": "WARN", "message": "message not settled; it comes back after the queue's visibility timeout", "function": function.name(), "message_id": failure.message_id, "operation": failure.operation, "reason": failure.reason}).to_string());
                                }
                                *delivered
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .entry(function.name().to_owned())
                                    .or_default() += report.delivered as u64;
                            }
                            Err(error) => {
                                logs.push("host", serde_json::json!({"level": "WARN", "message": "queue poll failed", "error": error.to_string()}).to_string());
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                }));
            }
        }

        let routes: Vec<api::Route> = stack
            .api_routes()
            .into_iter()
            .filter_map(|route| {
                let function: Arc<dyn Invoke> = Arc::new(functions.get(&route.function)?.clone());
                Some(api::Route { route, function })
            })
            .collect();
        let address = SocketAddr::from(([127, 0, 0, 1], options.api_port));
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| HostError::Listen { address, source })?;
        let api_address = listener
            .local_addr()
            .map_err(|source| HostError::Listen { address, source })?;
        let edge = match stack.api_definition() {
            Some(definition) if options.edge => Some(Edge::from_definition(definition)?),
            _ => None,
        };
        let app = api::router(routes, edge).into_make_service_with_connect_info::<SocketAddr>();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(answering_at_once(listener), app).await;
        }));

        Ok(Host {
            emulator,
            stack,
            sdk,
            logs,
            api_address,
            functions,
            delivered,
            tasks,
        })
    }

    /// SQS messages delivered to each function so far, retries and duplicates included:
    /// what Lambda's pollers would have received and deleted.
    pub fn delivered(&self) -> BTreeMap<String, u64> {
        self.delivered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A function, to invoke directly.
    pub fn function(&self, name: &str) -> Option<&FunctionHost> {
        self.functions.get(name)
    }

    /// Every function, by logical id.
    pub fn functions(&self) -> impl Iterator<Item = &FunctionHost> {
        self.functions.values()
    }

    /// The API's base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_address)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for function in self.functions.values() {
            function.close();
        }
    }
}

/// template.yaml points `SSL_CERT_FILE` at Amazon Linux 2023's CA bundle. This machine
/// may keep its bundle elsewhere (Debian, Ubuntu) or have none there (macOS), and a
/// function refuses to start on a missing one: point it at this machine's bundle, as
/// OpenSSL finds it, so a local init reads one file as it does on Lambda; with none,
/// leave it unset, and the function reads the system's store.
fn local_trust_store(env: &mut BTreeMap<String, String>) {
    let Some(file) = env.get(TRUST_STORE_VARIABLE) else {
        return;
    };
    if Path::new(file).is_file() {
        return;
    }
    match openssl_probe::probe().cert_file {
        Some(local) => env.insert(TRUST_STORE_VARIABLE.into(), local.display().to_string()),
        None => env.remove(TRUST_STORE_VARIABLE),
    };
}

/// `listener` with Nagle's algorithm off on every connection it accepts, as on any
/// request/response server: with it on, a response written in two parts waits up to
/// 40 ms for the client's delayed acknowledgement of the first (the emulator's
/// `QuietRequestHandler` says more).
pub(crate) fn answering_at_once(
    listener: TcpListener,
) -> axum::serve::TapIo<TcpListener, fn(&mut TcpStream)> {
    fn no_delay(tcp: &mut TcpStream) {
        let _ = tcp.set_nodelay(true);
    }
    listener.tap_io(no_delay)
}
