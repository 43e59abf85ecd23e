//! A line of progress every few seconds while a long phase runs.
//!
//! `make reliability`'s load scenario and `make bench`'s throughput run take minutes,
//! and a run that prints nothing for minutes cannot be told from one that hangs. While
//! a [`Heartbeat`] lives it reports, every [`EVERY`] or less often (see
//! `WAIT_PER_READING`), how many orders are final, how many messages wait in the
//! consumer queues and how many sit in dead-letter queues: enough to see the pipeline
//! moving, or stuck, and where.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::audit::Stores;

/// How often a heartbeat reports, at most.
pub const EVERY: Duration = Duration::from_secs(10);

/// A heartbeat waits at least this many times as long as its last reading took before
/// the next. Counting final orders scans the orders table, and the emulator serves
/// that scan between the pipeline's own requests: on a 10 000-order run a scan took
/// seconds, and reports every 10 s kept the emulator scanning a third of the time and
/// slowed the very run they reported on. This keeps the reading to a tenth.
const WAIT_PER_READING: u32 = 9;

/// Reports progress until dropped.
pub struct Heartbeat(JoinHandle<()>);

impl Heartbeat {
    /// Prints a line to stdout every [`EVERY`], counting towards `orders` final orders.
    pub fn print(phase: &'static str, stores: Arc<Stores>, orders: usize) -> Heartbeat {
        Self::every(EVERY, phase, stores, orders, |line| println!("{line}"))
    }

    /// Hands a line to `report` every `period`: [`Heartbeat::print`]'s engine, with the
    /// period and the output a test can choose.
    pub fn every(
        period: Duration,
        phase: &'static str,
        stores: Arc<Stores>,
        orders: usize,
        report: impl Fn(String) + Send + 'static,
    ) -> Heartbeat {
        let started = Instant::now();
        Heartbeat(tokio::spawn(async move {
            let mut wait = period;
            loop {
                tokio::time::sleep(wait).await;
                let seconds = started.elapsed().as_secs();
                let at = format!("  ... {phase} {}:{:02}", seconds / 60, seconds % 60);
                let reading = Instant::now();
                let line = match stores.progress().await {
                    Ok(progress) => format!(
                        "{at}  {} of {orders} orders final, {} messages queued, {} dead letters",
                        progress.final_orders, progress.queued, progress.dead_letters
                    ),
                    Err(error) => format!("{at}  progress unknown: {error}"),
                };
                wait = period.max(reading.elapsed() * WAIT_PER_READING);
                report(line);
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
