//! Logs and metrics, set up once per cold start.
//!
//! **Logs**: one flat JSON object per line, which CloudWatch Logs Insights can query
//! field by field. Every line carries `timestamp`, `level`, `message`, the event's own
//! fields, `function`, `cold_start` (true on exactly one line per process, the one that
//! opens its first invocation), and the fields of every span it is logged in: the
//! runtime's `requestId` and `xrayTraceId`, and the `correlation_id` and `order_id` the
//! handlers put on their spans. So one correlation id finds an order's whole path, in
//! every function. The level comes from Lambda's `AWS_LAMBDA_LOG_LEVEL` (set by the
//! template's `LoggingConfig`), else `RUST_LOG`, else INFO.
//!
//! **Metrics**: [`crate::metrics`] counts through the `metrics` facade; the collector
//! installed here writes them as CloudWatch Embedded Metric Format (EMF) lines after each
//! invocation, plus a `ColdStart` metric on a process's first invocation. CloudWatch turns
//! EMF lines into metrics with no API call and no extra latency.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the handlers have always found it; it lives in [`domain::error_chain`] so the
/// domain can use it without the AWS side.
pub use domain::error_chain::ErrorChain;
use metrics_cloudwatch_embedded::Collector;
/// Start the Lambda runtime with the handler, as `lambda_runtime::run` and
/// `lambda_http::run` do, plus the layer that flushes metrics after each invocation.
pub use metrics_cloudwatch_embedded::lambda::service::{run, run_http};
use tracing::instrument::Instrumented;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The CloudWatch namespace of the pipeline's own metrics when
/// `POWERTOOLS_METRICS_NAMESPACE` does not name one (template.yaml's Globals set it to
/// this, and the dashboard charts it).
pub const METRICS_NAMESPACE: &str = "RustOrderPipeline";

/// The variables Powertools for AWS Lambda reads for the same two settings, read here the
/// same way, so a team mixing languages configures every function alike.
const SERVICE_NAME_VARIABLE: &str = "POWERTOOLS_SERVICE_NAME";
const METRICS_NAMESPACE_VARIABLE: &str = "POWERTOOLS_METRICS_NAMESPACE";

/// Powertools' service name when none is set.
const SERVICE_UNDEFINED: &str = "service_undefined";

/// How many invocations this process has started.
static INVOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set only while the one "cold start" line of a process is being written.
    static WRITING_COLD_START_LINE: Cell<bool> = const { Cell::new(false) };
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics collector: {0}")]
pub struct TelemetryError(String);

/// Installs the JSON log subscriber and the EMF metrics collector. Call once at the top of
/// `main`, and run the handler with [`metrics_cloudwatch_embedded::lambda::service`]'s
/// `run`/`run_http` and the returned collector, so metrics are flushed after every
/// invocation.
pub fn init() -> Result<&'static Collector, TelemetryError> {
    init_logs();
    let setting = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let service = setting(SERVICE_NAME_VARIABLE, SERVICE_UNDEFINED);
    let namespace = setting(METRICS_NAMESPACE_VARIABLE, METRICS_NAMESPACE);
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        // One dimension, so the dashboard can tell stacks (dev, prod) apart.
        .with_dimension("service", service)
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("requestId")
        .with_lambda_xray_trace_id("xrayTraceId")
        .init()
        .map_err(|e| TelemetryError(e.to_string()))?;
    crate::metrics::describe();
    Ok(collector)
}

/// Installs only the JSON log subscriber; later calls are no-ops.
pub fn init_logs() {
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| env_or_binary_name());
    let mut layer = json_subscriber::JsonLayer::stdout();
    layer
        .with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime)
        .with_level("level")
        .with_flattened_event()
        .with_top_level_flattened_span_list();
    layer.add_static_field("function", serde_json::Value::String(function));
    layer.add_dynamic_field("cold_start", |_, _| {
        Some(WRITING_COLD_START_LINE.with(Cell::get))
    });
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

fn env_or_binary_name() -> String {
    std::env::args()
        .next()
        .and_then(|path| {
            std::path::Path::new(&path)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_default()
}

/// Runs one invocation's handler in a span that numbers it within the process. The first
/// invocation of a process starts with one "cold start" line, the only line of the
/// process with `cold_start: true`, so counting those lines counts cold starts (and the
/// line carries the request id of the invocation that paid for it). Wrap every handler
/// call in `main` with it.
pub fn invocation<F: Future>(handler: F) -> Instrumented<impl Future<Output = F::Output>> {
    let number = INVOCATIONS.fetch_add(1, Ordering::Relaxed) + 1;
    let work = async move {
        if number == 1 {
            WRITING_COLD_START_LINE.with(|flag| flag.set(true));
            tracing::info!("cold start: first invocation of this process");
            WRITING_COLD_START_LINE.with(|flag| flag.set(false));
        }
        handler.await
    };
    tracing::Instrument::instrument(work, tracing::info_span!("invocation", invocation = number))
}
