//! Init time: from process start to the process's first Runtime API `next` request.
//!
//! That is what Lambda bills and reports as `Init Duration`: everything a function does
//! before it can take its first event (start the process, read its settings, build its
//! SDK clients, fetch its secret). Each run starts the program afresh against a listener
//! that only waits for that first request, then kills it: a true cold start every time.
//!
//! A function of this project also says where its init went, phase by phase, on one log
//! line (`aws_adapters::init_phases`): [`time_cold_starts_by_phase`] reads it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_adapters::init_phases::{LINE, parse_phases};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio::process::Command;

use super::BenchError;

/// How long one cold start may take before the run counts as failed.
const LIMIT: Duration = Duration::from_secs(30);

/// Times `runs` cold starts of the program `command` builds (given the Runtime API
/// address to use), in milliseconds, sorted.
pub async fn time_cold_starts(
    label: &str,
    command: impl Fn(SocketAddr) -> Command,
    runs: usize,
) -> Result<Vec<f64>, BenchError> {
    Ok(time_cold_starts_by_phase(label, command, runs).await?.0)
}

/// [`time_cold_starts`], and the median of each phase the function reported (in
/// milliseconds, in the order it reported them; none from a program that does not).
pub async fn time_cold_starts_by_phase(
    label: &str,
    command: impl Fn(SocketAddr) -> Command,
    runs: usize,
) -> Result<(Vec<f64>, Vec<(String, f64)>), BenchError> {
    let mut times = Vec::with_capacity(runs);
    let mut phases: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..runs {
        let (ms, reported) = once(label, &command).await?;
        times.push(ms);
        for (name, ms) in reported {
            match phases.iter_mut().find(|(known, _)| *known == name) {
                Some((_, samples)) => samples.push(ms),
                None => phases.push((name, vec![ms])),
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let medians = phases
        .into_iter()
        .map(|(name, mut samples)| {
            samples.sort_by(f64::total_cmp);
            (name, median(&samples))
        })
        .collect();
    Ok((times, medians))
}

/// The phases on a program's [`LINE`] log line, if it wrote one.
fn reported_phases(stdout: &str) -> Vec<(String, f64)> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|json| json["message"] == LINE)
        .and_then(|json| json["phases_us"].as_str().map(parse_phases))
        .unwrap_or_default()
}

async fn once(
    label: &str,
    command: &impl Fn(SocketAddr) -> Command,
) -> Result<(f64, Vec<(String, f64)>), BenchError> {
    let fail = |what: String| BenchError(format!("cold start of {label}: {what}"));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail(e.to_string()))?;
    let address = listener.local_addr().map_err(|e| fail(e.to_string()))?;
    let mut command = command(address);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| fail(e.to_string()))?;
    let first_request = async {
        let (mut stream, _) = listener.accept().await?;
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        Ok::<_, std::io::Error>((started.elapsed(), head))
    };
    let outcome = tokio::time::timeout(LIMIT, first_request).await;
    let _ = child.start_kill();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ =
            tokio::time::timeout(Duration::from_secs(2), pipe.read_to_string(&mut stderr)).await;
    }
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ =
            tokio::time::timeout(Duration::from_secs(2), pipe.read_to_string(&mut stdout)).await;
    }
    let _ = child.wait().await;
    match outcome {
        Ok(Ok((elapsed, head))) => {
            let head = String::from_utf8_lossy(&head);
            let request_line = head.lines().next().unwrap_or_default();
            if request_line.contains("/runtime/invocation/next") {
                Ok((elapsed.as_secs_f64() * 1000.0, reported_phases(&stdout)))
            } else {
                Err(fail(format!(
                    "its first request was `{request_line}`, not `next`: {}",
                    stderr.trim()
                )))
            }
        }
        Ok(Err(e)) => Err(fail(format!("{e}: {}", stderr.trim()))),
        Err(_) => Err(fail(format!(
            "no `next` within {LIMIT:?}: {}",
            stderr.trim()
        ))),
    }
}

/// The median of sorted samples.
pub fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
