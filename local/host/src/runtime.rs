//! One function, run like Lambda runs it: its real `bootstrap` binary as child processes
//! that pull invocations from the **Lambda Runtime API**, served here on loopback.
//!
//! - `GET  /2018-06-01/runtime/invocation/next` hands out the next event (with the
//!   request id, deadline and function ARN headers);
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../error` finish it;
//! - `POST /2018-06-01/runtime/init/error` reports a failed cold start.
//!
//! Like Lambda, the host starts processes on demand up to the function's concurrency,
//! kills a process that overruns its timeout and reports `Sandbox.Timedout`, reports a
//! process that dies mid-invocation as `Runtime.ExitError` and starts a fresh one, and
//! writes a `platform.report` line (duration, billed duration, memory size, peak memory,
//! init duration on a cold start) after every invocation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

use super::logs::Logs;
use crate::invoke::{Invoke, InvokeError, InvokeFuture, TIMED_OUT};
use emulator::{ACCOUNT_ID, REGION};

/// What the host needs to run one function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The logical id in the template.
    pub name: String,
    /// The `bootstrap` binary (or any executable speaking the Runtime API).
    pub binary: PathBuf,
    /// Extra arguments (e.g. a script for an interpreter).
    pub args: Vec<String>,
    /// The environment from the template, pointed at the emulator.
    pub env: BTreeMap<String, String>,
    /// The template's `Timeout`.
    pub timeout: Duration,
    /// The template's `MemorySize`, in MB (reported, not enforced).
    pub memory_mb: u64,
    /// How many processes may run at once.
    pub max_processes: usize,
}

struct Invocation {
    id: String,
    event: Value,
    reply: oneshot::Sender<Result<Value, InvokeError>>,
}

struct Current {
    id: String,
    started: Instant,
    reply: Option<oneshot::Sender<Result<Value, InvokeError>>>,
}

struct Shared {
    spec: FunctionSpec,
    queue: Mutex<Option<mpsc::UnboundedSender<Invocation>>>,
    pending: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    processes: AtomicUsize,
    idle: AtomicUsize,
    /// The running processes' ids, for fault injection.
    pids: Mutex<Vec<u32>>,
    logs: Logs,
}

/// A function served through the Runtime API; cheap to clone.
#[derive(Clone)]
pub struct FunctionHost {
    shared: Arc<Shared>,
}

impl FunctionHost {
    /// Prepares the function; processes start with the first invocation.
    pub fn new(spec: FunctionSpec, logs: Logs) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            shared: Arc::new(Shared {
                spec,
                queue: Mutex::new(Some(sender)),
                pending: tokio::sync::Mutex::new(receiver),
                processes: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
                pids: Mutex::new(Vec::new()),
                logs,
            }),
        }
    }

    /// How the function is started: binary, environment, limits.
    pub fn spec(&self) -> &FunctionSpec {
        &self.shared.spec
    }

    /// The function's logical id.
    pub fn name(&self) -> &str {
        &self.shared.spec.name
    }

    /// Stops accepting invocations; idle processes are killed when the host drops.
    pub fn close(&self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Kills one of the function's processes, if one runs, as abruptly as a crash or an
    /// out-of-memory kill would (SIGKILL): whatever it was doing is lost mid-way, the
    /// host reports the invocation as `Runtime.ExitError` and starts a fresh process.
    /// The fault runs use it. Returns whether a process was killed.
    pub fn kill_one(&self) -> bool {
        let pid = self
            .shared
            .pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .copied();
        pid.is_some_and(|pid| emulator::signal::send("-KILL", pid).is_ok())
    }

    fn scale(&self) {
        let shared = &self.shared;
        if shared.idle.load(Ordering::SeqCst) > 0 {
            return;
        }
        let running = shared.processes.load(Ordering::SeqCst);
        if running < shared.spec.max_processes.max(1)
            && shared
                .processes
                .compare_exchange(running, running + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            tokio::spawn(supervise(shared.clone()));
        }
    }
}

impl Invoke for FunctionHost {
    fn invoke(&self, event: Value) -> InvokeFuture<'_> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let invocation = Invocation {
                id: uuid::Uuid::new_v4().to_string(),
                event,
                reply,
            };
            let sent = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|queue| queue.send(invocation).is_ok())
                .unwrap_or(false);
            if !sent {
                return Err(InvokeError::new(
                    "Host.Stopped",
                    "the host is shutting down",
                ));
            }
            self.scale();
            answer
                .await
                .unwrap_or_else(|_| Err(InvokeError::new("Host.Stopped", "the host stopped")))
        })
    }
}

/// State of one process's Runtime API server.
#[derive(Clone)]
struct Process {
    shared: Arc<Shared>,
    current: Arc<Mutex<Option<Current>>>,
    /// The deadline of the invocation in flight, watched by the supervisor.
    deadline: watch::Sender<Option<Instant>>,
    spawned: Instant,
    /// Time from spawn to the first `next`: the cold start's init duration.
    init_ms: Arc<Mutex<Option<f64>>>,
    /// Whether a report already carried the init duration (only the first does).
    init_reported: Arc<std::sync::atomic::AtomicBool>,
    pid: Arc<Mutex<Option<u32>>>,
}

fn epoch_ms(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

async fn next(State(process): State<Process>) -> impl IntoResponse {
    process.shared.idle.fetch_add(1, Ordering::SeqCst);
    process
        .init_ms
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(|| process.spawned.elapsed().as_secs_f64() * 1000.0);
    let invocation = process.shared.pending.lock().await.recv().await;
    process.shared.idle.fetch_sub(1, Ordering::SeqCst);
    let Some(invocation) = invocation else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let timeout = process.shared.spec.timeout;
    let deadline = SystemTime::now() + timeout;
    *process
        .current
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(Current {
        id: invocation.id.clone(),
        started: Instant::now(),
        reply: Some(invocation.reply),
    });
    let _ = process.deadline.send(Some(Instant::now() + timeout));
    let mut headers = HeaderMap::new();
    let mut header = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    header("lambda-runtime-aws-request-id", invocation.id.clone());
    header("lambda-runtime-deadline-ms", epoch_ms(deadline).to_string());
    header(
        "lambda-runtime-invoked-function-arn",
        format!(
            "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}",
            process.shared.spec.name
        ),
    );
    header(
        "lambda-runtime-trace-id",
        format!(
            "Root=1-{:08x}-{}",
            epoch_ms(SystemTime::now()) / 1000,
            &invocation.id.replace('-', "")[..24]
        ),
    );
    header("content-type", "application/json".into());
    (StatusCode::OK, headers, invocation.event.to_string())
}

impl Process {
    /// Ends the invocation in flight with `result` and writes its report.
    fn finish(&self, id: Option<&str>, result: Result<Value, InvokeError>, status: &str) -> bool {
        let current = {
            let mut slot = self.current.lock().unwrap_or_else(PoisonError::into_inner);
            match (slot.as_ref(), id) {
                (Some(current), Some(id)) if current.id != id => return false,
                (None, _) => return false,
                _ => slot.take(),
            }
        };
        let _ = self.deadline.send(None);
        let Some(mut current) = current else {
            return false;
        };
        if let Some(reply) = current.reply.take() {
            let _ = reply.send(result);
        }
        let duration = current.started.elapsed().as_secs_f64() * 1000.0;
        let init = if self.init_reported.swap(true, Ordering::SeqCst) {
            None
        } else {
            *self.init_ms.lock().unwrap_or_else(PoisonError::into_inner)
        };
        let peak_mb = self
            .pid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .and_then(peak_memory_mb);
        let mut metrics = json!({
            "durationMs": (duration * 100.0).round() / 100.0,
            "billedDurationMs": duration.ceil(),
            "memorySizeMB": self.shared.spec.memory_mb,
            "maxMemoryUsedMB": peak_mb,
        });
        if let Some(init) = init {
            metrics["initDurationMs"] = json!((init * 100.0).round() / 100.0);
        }
        let report = json!({
            "time": humantime_now(),
            "type": "platform.report",
            "record": { "requestId": current.id, "metrics": metrics, "status": status },
        });
        self.shared
            .logs
            .push(&self.shared.spec.name, report.to_string());
        true
    }
}

fn humantime_now() -> String {
    let ms = epoch_ms(SystemTime::now());
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Peak resident memory of a process (VmHWM), in MB.
fn peak_memory_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.div_ceil(1024))
}

async fn response(
    State(process): State<Process>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if process.finish(Some(&id), Ok(value), "success") {
        StatusCode::ACCEPTED
    } else {
        StatusCode::BAD_REQUEST
    }
}

fn error_of(body: &str, fallback: &str) -> InvokeError {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    InvokeError::new(
        json["errorType"].as_str().unwrap_or(fallback),
        json["errorMessage"].as_str().unwrap_or(body),
    )
}

async fn error(State(process): State<Process>, Path(id): Path<String>, body: String) -> StatusCode {
    let error = error_of(&body, "Unhandled");
    process.shared.logs.push(
        &process.shared.spec.name,
        json!({"level": "ERROR", "message": "invocation failed", "error_type": error.error_type, "error": error.message}).to_string(),
    );
    if process.finish(Some(&id), Err(error), "error") {
        StatusCode::ACCEPTED
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn init_error(State(process): State<Process>, body: String) -> StatusCode {
    let error = error_of(&body, "Runtime.InitError");
    process.shared.logs.push(
        &process.shared.spec.name,
        json!({"level": "ERROR", "message": "init failed", "error_type": error.error_type, "error": error.message}).to_string(),
    );
    StatusCode::ACCEPTED
}

/// Runs one process slot: start the binary, serve its Runtime API, enforce timeouts,
/// and start a fresh process after a crash or a timeout kill.
async fn supervise(shared: Arc<Shared>) {
    loop {
        let outcome = run_once(shared.clone()).await;
        let stopped = shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none();
        if stopped {
            break;
        }
        if let Err(message) = outcome {
            shared.logs.push(
                "host",
                json!({"level": "ERROR", "message": message, "function": shared.spec.name})
                    .to_string(),
            );
            // Do not spin on a binary that cannot start.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    shared.processes.fetch_sub(1, Ordering::SeqCst);
}

async fn run_once(shared: Arc<Shared>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the runtime API: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("runtime API address: {e}"))?;
    let (deadline, mut deadlines) = watch::channel(None);
    let process = Process {
        shared: shared.clone(),
        current: Arc::new(Mutex::new(None)),
        deadline,
        spawned: Instant::now(),
        init_ms: Arc::new(Mutex::new(None)),
        init_reported: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        pid: Arc::new(Mutex::new(None)),
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(process.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(super::answering_at_once(listener), app).await;
    });

    let spec = &shared.spec;
    let mut command = command(spec, address);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.binary.display()))?;
    *process.pid.lock().unwrap_or_else(PoisonError::into_inner) = child.id();
    let pid = child.id();
    if let Some(pid) = pid {
        shared
            .pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pid);
    }
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        let logs = shared.logs.clone();
        let name = spec.name.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                logs.push(&name, line);
            }
        });
    }

    let outcome = loop {
        let current_deadline = *deadlines.borrow();
        tokio::select! {
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                process.finish(
                    None,
                    Err(InvokeError::new("Runtime.ExitError", format!("RequestId: the runtime exited ({status})"))),
                    "error",
                );
                break Err(format!("{} exited ({status}); starting a new process", spec.name));
            }
            changed = deadlines.changed() => {
                if changed.is_err() { break Ok(()); }
            }
            () = async {
                match current_deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                let seconds = spec.timeout.as_secs();
                process.finish(
                    None,
                    Err(InvokeError::new(TIMED_OUT, format!("Task timed out after {seconds}.00 seconds"))),
                    "timeout",
                );
                break Err(format!("{} timed out after {seconds} s and was stopped", spec.name));
            }
        }
    };
    server.abort();
    shared
        .pids
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|running| Some(*running) != pid);
    outcome
}

/// The command that starts one process of a function: its binary with the template's
/// environment and the variables Lambda sets, talking to the Runtime API at `runtime_api`.
/// `make bench` starts functions with exactly this to time their cold starts.
pub fn command(spec: &FunctionSpec, runtime_api: SocketAddr) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&spec.binary);
    command
        .args(&spec.args)
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME" || k.starts_with("LANG")))
        .envs(&spec.env)
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        )
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("_HANDLER", "bootstrap");
    command
}
