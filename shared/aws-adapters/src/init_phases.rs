//! Where a cold start's time goes, phase by phase.
//!
//! Lambda bills the init phase and reports it as one number, `Init Duration`. Each step
//! of ours is timed here: telemetry, the settings, the SDK configuration, the function's
//! wiring, and inside the wiring each client and the secret. The last thing init does is
//! write them all on one log line, [`LINE`], so a cold start's logs say where its time
//! went, and `make bench` puts the figures side by side (docs/performance.md, "Init,
//! phase by phase"). What the line cannot see is the runtime's own share: the process
//! starting, Tokio, and the Runtime API client's first request. The bench counts that
//! as the measured init less the phases here, so no time is left unattributed.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The message of the log line that lists the phases (its `phases_us` field).
pub const LINE: &str = "init phases";

/// The phases every function's init has, named once for the writer ([`crate::runtime`])
/// and the reader (`make bench`): the JSON logs and the metrics collector;
pub const TELEMETRY: &str = "telemetry";
/// the settings from the environment;
pub const SETTINGS: &str = "config";
/// the SDK configuration;
pub const SDK_CONFIG: &str = "sdk_config";
/// and the function's wiring, which holds its clients and its secret:
pub const WIRING: &str = "wiring";
/// a client is `client.` and its service (`client.dynamodb`);
pub const CLIENT: &str = "client.";
/// a secret read at init.
pub const SECRET: &str = "secret";

/// The phases timed so far, in the order they ended; `None` once [`report`] wrote them,
/// so a client built later, on first use, is not taken for init.
static PHASES: Mutex<Option<Vec<(&'static str, Duration)>>> = Mutex::new(Some(Vec::new()));

/// Runs one init step and records how long it took, under `name` (`client.dynamodb`,
/// `secret`: a dot groups the steps of one kind).
pub fn timed<T>(name: &'static str, step: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = step();
    record(name, started.elapsed());
    result
}

/// [`timed`] for a step that waits: the SDK configuration, a secret, the wiring.
pub async fn timed_async<T>(name: &'static str, step: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = step.await;
    record(name, started.elapsed());
    result
}

fn record(name: &'static str, took: Duration) {
    // A poisoned lock means a step panicked: the cold start fails anyway.
    if let Ok(mut phases) = PHASES.lock()
        && let Some(phases) = phases.as_mut()
    {
        phases.push((name, took));
    }
}

/// Writes the phases on one log line, [`LINE`], and stops recording.
pub fn report() {
    let phases = PHASES
        .lock()
        .ok()
        .and_then(|mut phases| phases.take())
        .unwrap_or_default();
    tracing::info!(phases_us = %format_phases(&phases), "{LINE}");
}

/// The phases as the log line writes them: `name=microseconds`, space-separated, in the
/// order they ended (so the wiring comes after the clients and the secret inside it).
pub fn format_phases(phases: &[(&str, Duration)]) -> String {
    phases
        .iter()
        .map(|(name, took)| format!("{name}={}", took.as_micros()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The phases of a [`format_phases`] text, in milliseconds; what is not `name=number` is
/// skipped.
pub fn parse_phases(text: &str) -> Vec<(String, f64)> {
    text.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(name, micros)| {
            let micros: f64 = micros.parse().ok()?;
            Some((name.to_owned(), micros / 1000.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_read_back_as_they_were_written() {
        let written = format_phases(&[
            ("telemetry", Duration::from_micros(412)),
            ("client.dynamodb", Duration::from_micros(80)),
            ("wiring", Duration::from_micros(1_500)),
        ]);
        assert_eq!(written, "telemetry=412 client.dynamodb=80 wiring=1500");
        assert_eq!(
            parse_phases(&written),
            vec![
                ("telemetry".to_owned(), 0.412),
                ("client.dynamodb".to_owned(), 0.08),
                ("wiring".to_owned(), 1.5),
            ]
        );
        assert!(parse_phases("noise and=more").is_empty());
    }
}
