//! Orders per second through the local pipeline, against the limit the emulator sets.
//!
//! Everything runs on one machine, and the emulator serves every AWS request: two moto
//! processes, as in `make reliability`, one for DynamoDB and its streams and one for
//! everything else. Python runs one thread at a time, so each process can do at most one
//! CPU-second of work per second: its capacity is the requests it served per second of
//! its own CPU time, and its limit is that capacity divided by the requests one order
//! asks of it (the functions' and the event source pollers'). The pipeline's limit is
//! the smaller of the two: the busier process bounds it. The ratio of the measured rate
//! to that limit is how busy the pipeline kept the emulator.
//!
//! The same run gives each function's peak memory (from the host's reports, warm
//! processes taking batches of up to ten records), its invocations and their durations,
//! and the bytes it logged: the cost model's inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BenchError, until_functions_still};
use crate::audit::{Audit, Expected, Stores};
use crate::heartbeat::Heartbeat;
use crate::reliability::{place, stock_for};
use emulator::{CapacityUnits, RequestCounts, served_by_dynamodb_process};
use lambda_host::Host;

/// Linux reports process CPU time in ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// One function's share of the run.
#[derive(Debug, Clone, Default)]
pub struct FunctionRun {
    /// Invocations.
    pub invocations: u64,
    /// Their mean duration, in milliseconds.
    pub mean_ms: f64,
    /// The most resident memory any of its processes reached, in MB.
    pub peak_mb: u64,
    /// SQS messages delivered to it.
    pub delivered: u64,
    /// Bytes of log lines it wrote.
    pub log_bytes: u64,
}

/// One emulator process's share of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatorLoad {
    /// The services it serves, for the report.
    pub serves: &'static str,
    /// Requests it served in the window, every caller's.
    pub served: u64,
    /// Its CPU time in the window.
    pub cpu: Duration,
    /// The requests one order asks of it: the functions' and the pollers'.
    pub requests_per_order: f64,
}

impl EmulatorLoad {
    /// Requests it serves per second of its CPU time.
    pub fn capacity(&self) -> f64 {
        self.served as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    /// The orders per second it could serve if it never waited.
    pub fn limit(&self) -> f64 {
        self.capacity() / self.requests_per_order.max(1e-9)
    }
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Orders placed (a mix: happy, declined, out of stock, duplicate submissions).
    pub orders: usize,
    /// Orders accepted per second, from the first acceptance to the last final state.
    pub orders_per_second: f64,
    /// Median and 99th percentile time from acceptance to final state, in ms.
    pub p50_ms: i64,
    /// See `p50_ms`.
    pub p99_ms: i64,
    /// The window the emulator was measured over (first order to last function request).
    pub window: Duration,
    /// Requests the emulator served in the window, per caller and operation.
    pub requests: RequestCounts,
    /// The functions' requests per order.
    pub function_requests_per_order: f64,
    /// The event source pollers' requests per order (SQS receives and deletes, stream reads).
    pub poller_requests_per_order: f64,
    /// Each emulator process's requests and CPU time in the window.
    pub emulator: Vec<EmulatorLoad>,
    /// CPU time of this process (API, pollers, the load itself) in the window.
    pub host_cpu: Duration,
    /// CPU time of the whole machine (both cores) in the window.
    pub machine_cpu: Duration,
    /// DynamoDB read capacity units the functions' requests would consume on AWS.
    pub read_units: f64,
    /// DynamoDB write capacity units, likewise.
    pub write_units: f64,
    /// Per function.
    pub functions: BTreeMap<String, FunctionRun>,
    /// The audit of the run's stores: the pipeline stayed correct while measured.
    pub audit: Audit,
}

impl Throughput {
    /// The emulator's CPU time in the window, all its processes together.
    pub fn emulator_cpu(&self) -> Duration {
        self.emulator.iter().map(|load| load.cpu).sum()
    }

    /// The orders per second the emulator could serve if it never waited: the limit of
    /// its busiest process.
    pub fn limit(&self) -> f64 {
        self.emulator
            .iter()
            .filter(|load| load.requests_per_order > 0.0)
            .map(EmulatorLoad::limit)
            .reduce(f64::min)
            .unwrap_or(0.0)
    }
}

#[derive(Debug, Clone)]
struct CpuSample {
    at: Instant,
    /// Per emulator process, in the order of [`emulator::Emulator::pids`].
    emulator: Vec<f64>,
    host: f64,
    machine: f64,
}

fn process_cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is the first;
    // utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    (total - idle) / TICKS_PER_SECOND
}

fn sample(host: &Host) -> CpuSample {
    let emulator = host
        .emulator
        .pids()
        .iter()
        .map(|pid| process_cpu_seconds(&pid.to_string()))
        .collect();
    CpuSample {
        at: Instant::now(),
        emulator,
        host: process_cpu_seconds("self"),
        machine: machine_cpu_seconds(),
    }
}

fn difference(after: &RequestCounts, before: &RequestCounts) -> RequestCounts {
    let mut out = RequestCounts::new();
    for (caller, ops) in after {
        for (op, n) in ops {
            let was = before
                .get(caller)
                .and_then(|o| o.get(op))
                .copied()
                .unwrap_or(0);
            if *n > was {
                out.entry(caller.clone())
                    .or_default()
                    .insert(op.clone(), n - was);
            }
        }
    }
    out
}

/// An emulator process's role: the services it serves (for the report), and whether an
/// operation (`dynamodb.PutItem`) is one of theirs.
type Role = (&'static str, fn(&str) -> bool);

/// What each emulator process served and spent: with DynamoDB apart, the first process
/// serves every service but DynamoDB and its streams, the second only those
/// ([`served_by_dynamodb_process`]). `ordered` picks the callers whose requests an order asks for.
fn emulator_loads(
    dynamodb_apart: bool,
    requests: &RequestCounts,
    ordered: &dyn Fn(&str) -> bool,
    orders: usize,
    cpu_before: &[f64],
    cpu_after: &[f64],
) -> Vec<EmulatorLoad> {
    let roles: Vec<Role> = if dynamodb_apart {
        vec![
            ("every service but DynamoDB", |op| {
                !served_by_dynamodb_process(op)
            }),
            ("DynamoDB and its streams", served_by_dynamodb_process),
        ]
    } else {
        vec![("every service", |_| true)]
    };
    roles
        .into_iter()
        .enumerate()
        .map(|(i, (serves, serves_operation))| {
            let count = |callers: &dyn Fn(&str) -> bool| -> u64 {
                requests
                    .iter()
                    .filter(|(caller, _)| callers(caller))
                    .flat_map(|(_, ops)| ops.iter())
                    .filter(|(op, _)| serves_operation(op))
                    .map(|(_, n)| n)
                    .sum()
            };
            let cpu = cpu_after.get(i).copied().unwrap_or(0.0)
                - cpu_before.get(i).copied().unwrap_or(0.0);
            EmulatorLoad {
                serves,
                served: count(&|_| true),
                cpu: Duration::from_secs_f64(cpu.max(0.0)),
                requests_per_order: count(ordered) as f64 / orders.max(1) as f64,
            }
        })
        .collect()
}

/// Places `orders` orders, `concurrency` at a time, on `host` and measures the run.
pub async fn measure(
    host: &Host,
    stores: &Arc<Stores>,
    orders: usize,
    concurrency: usize,
) -> Result<Throughput, BenchError> {
    let functions: BTreeSet<String> = host.functions().map(|f| f.name().to_owned()).collect();
    let stock = stock_for(orders);
    stores
        .seed_stock(&stock)
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    let logs_before = host.logs.lines().len();
    let counts_before = host
        .emulator
        .request_counts()
        .await
        .map_err(BenchError::from)?;
    let delivered_before = host.delivered();
    let units_before = host
        .emulator
        .capacity_units()
        .await
        .map_err(BenchError::from)?;
    let start = sample(host);

    // Its counts are read as `audit`, not as a function: they stay out of the figures.
    let heartbeat = Heartbeat::print("throughput", stores.clone(), orders);
    let placed = place(&host.api_url(), orders, concurrency).await;
    let refused: Vec<String> = placed.iter().flat_map(|p| p.refused.clone()).collect();
    if let Some(first) = refused.first() {
        return Err(BenchError(format!(
            "{} orders refused, first: {first}",
            refused.len()
        )));
    }
    let accepted: BTreeSet<String> = placed.iter().flat_map(|p| p.order_ids.clone()).collect();

    // The window ends at the functions' last request, and the CPU readings with it.
    let (counts_after, end) = until_functions_still(
        host,
        Duration::from_secs(3),
        Duration::from_secs(600),
        || sample(host),
    )
    .await?;

    let delivered_after = host.delivered();
    let units_after = host
        .emulator
        .capacity_units()
        .await
        .map_err(BenchError::from)?;
    let units = |kind: &str| -> f64 {
        let total = |all: &CapacityUnits| -> f64 {
            all.iter()
                .filter(|(caller, _)| functions.contains(*caller))
                .filter_map(|(_, units)| units.get(kind))
                .sum()
        };
        total(&units_after) - total(&units_before)
    };
    let (read_units, write_units) = (units("read"), units("write"));

    if !stores
        .wait_until_quiet(&accepted, Duration::from_secs(120))
        .await
        .map_err(|e| BenchError(e.to_string()))?
    {
        return Err(BenchError("orders left unfinished".into()));
    }
    drop(heartbeat);
    stores
        .collect_notifications()
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    let audit = stores
        .audit(&Expected {
            accepted: accepted.clone(),
            initial_stock: stock,
            dead_letters: 0,
            faults_injected: false,
        })
        .await
        .map_err(|e| BenchError(e.to_string()))?;

    let requests = difference(&counts_after, &counts_before);
    let per_order = |callers: &dyn Fn(&str) -> bool| {
        requests
            .iter()
            .filter(|(caller, _)| callers(caller))
            .flat_map(|(_, ops)| ops.values())
            .sum::<u64>() as f64
            / accepted.len().max(1) as f64
    };
    let function_requests_per_order = per_order(&|c| functions.contains(c));
    let poller_requests_per_order = per_order(&|c| c == "test");
    let emulator = emulator_loads(
        host.emulator.runs_dynamodb_apart(),
        &requests,
        &|caller| functions.contains(caller) || caller == "test",
        accepted.len(),
        &start.emulator,
        &end.emulator,
    );

    let mut per_function: BTreeMap<String, FunctionRun> = BTreeMap::new();
    let mut total_ms: BTreeMap<String, f64> = BTreeMap::new();
    for line in host.logs.lines().iter().skip(logs_before) {
        if !functions.contains(&line.function) {
            continue;
        }
        let entry = per_function.entry(line.function.clone()).or_default();
        match line.json() {
            Some(json) if json["type"] == "platform.report" => {
                let metrics = &json["record"]["metrics"];
                entry.invocations += 1;
                *total_ms.entry(line.function.clone()).or_default() +=
                    metrics["durationMs"].as_f64().unwrap_or_default();
                entry.peak_mb = entry
                    .peak_mb
                    .max(metrics["maxMemoryUsedMB"].as_u64().unwrap_or(0));
            }
            _ => entry.log_bytes += line.text.len() as u64 + 1,
        }
    }
    for (function, run) in &mut per_function {
        run.mean_ms =
            total_ms.get(function).copied().unwrap_or_default() / run.invocations.max(1) as f64;
        let count = |map: &BTreeMap<String, u64>| map.get(function).copied().unwrap_or(0);
        run.delivered = count(&delivered_after).saturating_sub(count(&delivered_before));
    }

    let percentile = |p: f64| {
        let times = &audit.time_to_final_ms;
        times
            .get(((times.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let seconds = |d: f64| Duration::from_secs_f64(d.max(0.0));
    Ok(Throughput {
        orders: accepted.len(),
        orders_per_second: accepted.len() as f64 * 1000.0 / audit.busy_ms.max(1) as f64,
        p50_ms: percentile(0.5),
        p99_ms: percentile(0.99),
        window: end.at - start.at,
        requests,
        function_requests_per_order,
        poller_requests_per_order,
        emulator,
        host_cpu: seconds(end.host - start.host),
        machine_cpu: seconds(end.machine - start.machine),
        read_units,
        write_units,
        functions: per_function,
        audit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With DynamoDB apart each process is charged with the requests it served: an
    /// operation's service (`dynamodb.` for tables and streams alike) says which.
    #[test]
    fn each_process_is_charged_with_the_requests_it_served() {
        let requests = RequestCounts::from([
            (
                "PaymentFunction".to_owned(),
                BTreeMap::from([
                    ("dynamodb.TransactWriteItems".to_owned(), 20),
                    ("sqs.SendMessage".to_owned(), 2),
                ]),
            ),
            (
                "test".to_owned(),
                BTreeMap::from([
                    ("dynamodb.GetRecords".to_owned(), 10),
                    ("sqs.ReceiveMessage".to_owned(), 30),
                ]),
            ),
            (
                "audit".to_owned(),
                BTreeMap::from([("dynamodb.Scan".to_owned(), 5)]),
            ),
        ]);
        let ordered = |caller: &str| caller != "audit";
        let loads = emulator_loads(true, &requests, &ordered, 10, &[1.0, 2.0], &[4.0, 3.0]);
        assert_eq!(loads.len(), 2);
        assert_eq!((loads[0].served, loads[0].requests_per_order), (32, 3.2));
        assert_eq!(loads[0].cpu, Duration::from_secs(3));
        assert_eq!((loads[1].served, loads[1].requests_per_order), (35, 3.0));
        assert_eq!(loads[1].cpu, Duration::from_secs(1));

        let together = emulator_loads(false, &requests, &ordered, 10, &[1.0], &[4.0]);
        assert_eq!(together.len(), 1);
        assert_eq!(
            (together[0].served, together[0].requests_per_order),
            (67, 6.2)
        );
    }
}
