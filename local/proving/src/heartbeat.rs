//! A line of progress every few seconds while a long phase runs.
//!
//! `make reliability`'s load scenario and `make bench`'s throughput run take minutes,
//! and a run that prints nothing for minutes cannot be told from one that hangs. While
//! a [`Heartbeat`] lives it reports, every [`EVERY`], how many orders are final, how
//! many messages wait in the consumer queues and how many sit in dead-letter queues:
//! enough to see the pipeline moving, or stuck, and where. Each reading is cheap (see
//! [`Stores::progress`]), so reporting never slows the run it reports on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::audit::Stores;

/// How often a heartbeat reports.
pub const EVERY: Duration = Duration::from_secs(10);

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
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let seconds = started.elapsed().as_secs();
                let at = format!("  ... {phase} {}:{:02}", seconds / 60, seconds % 60);
                let line = match stores.progress().await {
                    Ok(progress) => format!(
                        "{at}  {} of {orders} orders final, {} messages queued, {} dead letters",
                        progress.final_orders, progress.queued, progress.dead_letters
                    ),
                    Err(error) => format!("{at}  progress unknown: {error}"),
                };
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
