//! The local host's command line: `local dev` (run everything until Ctrl-C, printing
//! every function's logs readably) and `local demo` (the scripted tour; exit code 0 only
//! if it passed) and `local reliability [SCALE]` (every reliability scenario, audited,
//! written to docs/reliability.md; exit code 0 only if every audit passed) and `local
//! bench [ORDERS]` (cold starts, sizes, memory, requests, throughput and cost, written to
//! docs/performance.md) and `local bench-choices` (a build per release-profile choice,
//! written to docs/release-profile.md) and `local smoke STACK` (a deployed stack's orders,
//! DLQs and alarms, with the caller's credentials; exit code 0 only if it works). `make dev`, `make demo`, `make reliability`,
//! `make bench` and `make bench-choices` build what they need and run these.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use emulator::workspace_root;
use lambda_host::logs::{Logs, readable};
use lambda_host::{Host, HostOptions};
use proving::smoke::Deployed;

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let result = match command.as_str() {
        "dev" => dev().await,
        "demo" => demo().await,
        "reliability" => reliability(std::env::args().nth(2), std::env::args().nth(3)).await,
        "bench" => bench(std::env::args().nth(2)).await,
        "bench-choices" => bench_choices(),
        "smoke" => smoke(std::env::args().nth(2), std::env::args().nth(3)).await,
        _ => {
            eprintln!(
                "usage: local dev | local demo | local reliability [SCALE (default 1.0) [SCENARIO]] | local bench [ORDERS] | local bench-choices | local smoke STACK [SECONDS (default 120)]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn smoke(
    stack: Option<String>,
    seconds: Option<String>,
) -> Result<bool, Box<dyn std::error::Error>> {
    let stack = stack.ok_or("usage: local smoke STACK [SECONDS]")?;
    let within = Duration::from_secs(seconds.as_deref().unwrap_or("120").parse()?);
    let sdk = aws_adapters::sdk::load_sdk_config().await;
    let deployed = Deployed::describe(&sdk, &stack).await?;
    println!(
        "smoke test of stack {stack}: {}",
        deployed
            .outputs
            .get("ApiUrl")
            .map_or("(no ApiUrl)", String::as_str)
    );
    let report = proving::smoke::run(
        &sdk,
        &deployed,
        &workspace_root().join("events/demo"),
        within,
    )
    .await?;
    println!("\n{report}");
    Ok(report.passed())
}

fn banner(host: &Host) {
    println!("emulator   {}", host.emulator.endpoint_url());
    println!(
        "API        {}  (locally no authentication: IAM is not checked; API Gateway's request validation applies)",
        host.api_url()
    );
    for route in host.stack.api_routes() {
        let refused = if route.permitted {
            ""
        } else {
            "  (500: no permission lets API Gateway invoke it)"
        };
        println!(
            "           {:<6} {:<16} -> {}{refused}",
            route.method, route.path, route.function
        );
    }
    for function in host.stack.functions() {
        println!("function   {function}");
    }
}

async fn dev() -> Result<bool, Box<dyn std::error::Error>> {
    let logs = Logs::default();
    let colour = std::io::stdout().is_terminal();
    logs.set_echo(move |line| println!("{}", readable(line, colour)));
    let port = std::env::var("API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let host = Host::start(
        HostOptions {
            api_port: port,
            ..HostOptions::default()
        },
        logs,
    )
    .await?;
    banner(&host);
    proving::demo::seed(&host, &workspace_root().join("events/demo")).await?;
    print_notifications(&host).await?;
    println!("Ctrl-C stops everything.");
    tokio::signal::ctrl_c().await?;
    println!("stopping...");
    drop(host);
    Ok(true)
}

/// Prints every notification customers are sent, as it is sent, so a change to what
/// they are told (lab 2's gift message) can be seen.
async fn print_notifications(host: &Host) -> Result<(), Box<dyn std::error::Error>> {
    let queue = proving::demo::watch_notifications(host, "dev-notifications-watch").await?;
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    tokio::spawn(async move {
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .wait_time_seconds(2)
                .send()
                .await;
            let Ok(received) = received else {
                // The emulator is gone: `make dev` is stopping.
                return;
            };
            for message in received.messages() {
                println!(
                    "{}",
                    proving::demo::notification_line(message.body().unwrap_or_default())
                );
                if let Some(handle) = message.receipt_handle() {
                    // A failed delete only means the line is printed again.
                    let _ = sqs
                        .delete_message()
                        .queue_url(&queue)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
    });
    Ok(())
}

async fn demo() -> Result<bool, Box<dyn std::error::Error>> {
    let logs = Logs::default();
    let host = Host::start(
        HostOptions {
            api_port: 0,
            ..HostOptions::default()
        },
        logs,
    )
    .await?;
    banner(&host);
    println!();
    let passed = proving::demo::run(&host, &workspace_root().join("events/demo")).await?;
    drop(host);
    Ok(passed)
}

/// The directory of the running executable: target/<profile>/ when built by cargo.
fn beside_this_binary() -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("the executable has no directory")?;
    Ok(dir.to_path_buf())
}

async fn reliability(
    scale: Option<String>,
    only: Option<String>,
) -> Result<bool, Box<dyn std::error::Error>> {
    let scale: f64 = scale.as_deref().unwrap_or("1.0").parse()?;
    // The functions built with this binary, in the same profile: `make reliability`
    // runs target/timing/local, so the pipeline it loads is optimised code, as on Lambda.
    let options = HostOptions {
        binaries: beside_this_binary()?,
        ..HostOptions::default()
    };
    let mut outcomes = Vec::new();
    let chosen = proving::reliability::scenarios(scale)
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|name| s.name.starts_with(name)));
    for scenario in chosen {
        println!(
            "== {}: {}; faults: {}",
            scenario.name,
            scenario.load(),
            scenario.faults()
        );
        let outcome = proving::reliability::run(&scenario, &options).await?;
        for check in &outcome.audit.checks {
            println!(
                "   {} {}: {}",
                if check.holds { "ok  " } else { "FAIL" },
                check.invariant,
                check.detail
            );
        }
        println!(
            "   {:.1} orders/s, time to final state p50 {} ms, p99 {} ms, {:.0} s\n",
            outcome.orders_per_second,
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.wall.as_secs_f64()
        );
        println!(
            "   {:?}; AWS requests failed by faults: {:?}; {} processes killed",
            outcome.audit.by_state, outcome.injected, outcome.killed
        );
        for (function, (count, mean)) in &outcome.invocations {
            println!("   {function:<28} {count:>6} invocations, mean {mean:>7.1} ms");
        }
        if !outcome.unfinished_trace.is_empty() {
            let dir = workspace_root().join("target/reliability");
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!(
                "{}-unfinished.log",
                scenario.name.replace(' ', "-")
            ));
            std::fs::write(&path, outcome.unfinished_trace.join("\n") + "\n")?;
            println!("   the unfinished orders' log lines: {}", path.display());
        }
        outcomes.push(outcome);
    }
    let api = match std::env::var("SCHEMATHESIS") {
        Ok(fuzzer) if only.is_none() => {
            let examples = ((300.0 * scale).round() as u32).max(10);
            println!("== API fuzzing: schemathesis, {examples} examples per operation and phase");
            let api = proving::reliability::fuzz_api(&fuzzer, examples, &options).await?;
            println!(
                "   {} {} in {:.0} s\n",
                if api.passed { "ok  " } else { "FAIL" },
                api.summary,
                api.wall.as_secs_f64()
            );
            Some(api)
        }
        _ => None,
    };
    let fuzz = proving::reliability::cargo_fuzz_results(&["order_request", "event_envelope"]);
    for target in fuzz.iter().filter(|target| target.ran) {
        println!(
            "== cargo fuzz {}: {} {}",
            target.name,
            if target.passed { "ok  " } else { "FAIL" },
            target.result
        );
    }
    let machine = format!(
        "{} CPU cores, scale {scale}, {}, function binaries from {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH,
        options
            .binaries
            .strip_prefix(workspace_root())
            .unwrap_or(&options.binaries)
            .display()
    );
    if only.is_none() {
        let path = workspace_root().join("docs/reliability.md");
        std::fs::write(
            &path,
            proving::reliability::report(&outcomes, api.as_ref(), &fuzz, &machine),
        )?;
        println!("wrote {}", path.display());
    }
    Ok(outcomes.iter().all(|o| o.audit.passed())
        && api.as_ref().is_none_or(|api| api.passed)
        && fuzz.iter().all(|target| target.passed || !target.ran))
}

async fn bench(orders: Option<String>) -> Result<bool, Box<dyn std::error::Error>> {
    let mut settings = proving::bench::Settings::default();
    if let Some(orders) = orders {
        settings.orders = orders.parse()?;
    }
    let results = proving::bench::run(settings).await?;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let page = proving::bench::report::write(&results, &machine(), &date);
    let path = workspace_root().join("docs/performance.md");
    std::fs::write(&path, &page)?;
    println!("{page}");
    println!("wrote {}", path.display());
    Ok(results.throughput.audit.passed())
}

fn bench_choices() -> Result<bool, Box<dyn std::error::Error>> {
    let root = workspace_root();
    let measured = proving::bench::choices::measure(&root, &root.join("target/bench-choices"))?;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let page = proving::bench::choices::report(&measured, &machine(), &date);
    let path = root.join("docs/release-profile.md");
    std::fs::write(&path, &page)?;
    println!("{page}");
    println!("wrote {}", path.display());
    Ok(true)
}

/// The machine a measurement ran on: cores, CPU model, architecture.
fn machine() -> String {
    format!(
        "{} CPU cores ({}, {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        std::env::consts::ARCH
    )
}

/// The CPU's model name, from /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
