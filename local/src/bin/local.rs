//! The local host's command line: `local dev` (run everything until Ctrl-C, printing
//! every function's logs readably) and `local demo` (the scripted tour; exit code 0 only
//! if it passed). `make dev` and `make demo` build the functions and run these.

use std::io::IsTerminal;
use std::process::ExitCode;

use local::emulator::workspace_root;
use local::host::logs::{Logs, readable};
use local::host::{Host, HostOptions};

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let result = match command.as_str() {
        "dev" => dev().await,
        "demo" => demo().await,
        _ => {
            eprintln!("usage: local dev | local demo");
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

fn banner(host: &Host) {
    println!("emulator   {}", host.emulator.endpoint_url());
    println!(
        "API        {}  (locally: no authentication and no edge validation; the functions still validate every request)",
        host.api_url()
    );
    for route in host.stack.api_routes() {
        println!(
            "           {:<6} {:<16} -> {}",
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
    local::demo::seed(&host, &workspace_root().join("events/demo")).await?;
    println!("Ctrl-C stops everything.");
    tokio::signal::ctrl_c().await?;
    println!("stopping...");
    drop(host);
    Ok(true)
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
    let passed = local::demo::run(&host, &workspace_root().join("events/demo")).await?;
    drop(host);
    Ok(passed)
}
