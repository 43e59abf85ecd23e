//! Structured logging: one JSON object per line, which CloudWatch Logs Insights can query.
//!
//! The level comes from Lambda's `AWS_LAMBDA_LOG_LEVEL` (set by the template's
//! `LoggingConfig`), else `RUST_LOG`, else INFO.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. Call once at the top of `main`; later calls are no-ops,
/// so tests may call it freely.
pub fn init() {
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_ansi(false)
        .try_init();
}
