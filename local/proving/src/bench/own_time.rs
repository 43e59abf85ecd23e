//! How long `make bench` itself takes, a goal of its own (15 minutes from a fresh clone).
//!
//! A run cannot time the builds that came before it, so the Makefile leaves marks in
//! `target/bench/`: the time (seconds since the epoch) it started, and the times each build
//! finished. The run reads them when it starts measuring and adds its own time at the end.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The marks' file names, in the order the Makefile writes them.
pub const MARKS: [&str; 3] = ["started", "timing-built", "arm64-built"];

/// The longest a mark may be older than the run that reads it: anything older belongs to
/// an earlier `make bench`, and the run was started by hand.
const FRESH: Duration = Duration::from_secs(120);

/// `make bench`'s phases, as this run saw them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OwnTime {
    /// Installing the tools and the `timing` build for this machine (the Python tools
    /// install alongside).
    pub timing_build: Duration,
    /// The arm64 release build.
    pub arm64_build: Duration,
    /// This run's measurements.
    pub measuring: Duration,
}

impl OwnTime {
    /// From start to the page.
    pub fn total(&self) -> Duration {
        self.timing_build + self.arm64_build + self.measuring
    }
}

/// The build phases from the marks in `dir`, if the Makefile has just written them in
/// order; `None` when the run was started by hand.
pub fn builds(dir: &Path, now: SystemTime) -> Option<(Duration, Duration)> {
    let read = |name: &str| -> Option<SystemTime> {
        let seconds = std::fs::read_to_string(dir.join(name)).ok()?;
        Some(UNIX_EPOCH + Duration::from_secs(seconds.trim().parse().ok()?))
    };
    let [started, timing, arm64] = MARKS.map(read);
    let (started, timing, arm64) = (started?, timing?, arm64?);
    let timing_build = timing.duration_since(started).ok()?;
    let arm64_build = arm64.duration_since(timing).ok()?;
    // Marks have whole seconds, so the last may be up to a second ahead of `now`.
    let since = now.duration_since(arm64).unwrap_or_default();
    (since <= FRESH).then_some((timing_build, arm64_build))
}
