//! `make emulator`: the emulator on a fixed port with template.yaml provisioned, for
//! running functions by hand (e.g. `cargo lambda watch` + `cargo lambda invoke`).
//!
//! Writes every function's environment, pointed at the emulator, to
//! `target/local/lambda.env` (the format `cargo lambda watch --env-file` reads), then
//! serves until Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;

use emulator::provision::provision;
use emulator::template::Template;
use emulator::{Emulator, workspace_root};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("EMULATOR_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    let template = Template::translate(&Template::workspace_template())?;
    let emulator = Emulator::start_on(port).await?;
    let stack = provision(&emulator.sdk_config(), &template).await?;

    // `cargo lambda watch` gives every function one environment: merge them, and say
    // where two functions set the same variable differently (each function's own file
    // under target/local/ has its exact environment).
    let mut env = BTreeMap::new();
    let dir = workspace_root().join("target/local");
    std::fs::create_dir_all(&dir)?;
    for function in stack.functions() {
        let own = stack.function_env(&function)?;
        let lines: Vec<String> = own.iter().map(|(k, v)| format!("{k}={v}")).collect();
        std::fs::write(dir.join(format!("{function}.env")), lines.join("\n") + "\n")?;
        for (key, value) in own {
            if let Some(previous) = env.insert(key.clone(), value.clone())
                && previous != value
            {
                println!("note: {key} differs per function; lambda.env keeps {function}'s");
            }
        }
    }
    env.insert("AWS_ENDPOINT_URL".into(), emulator.endpoint_url());
    env.insert("AWS_REGION".into(), emulator::REGION.into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "test".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
    let env_file: PathBuf = dir.join("lambda.env");
    let lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    std::fs::write(&env_file, lines.join("\n") + "\n")?;

    println!(
        "emulator: {} (template.yaml provisioned)",
        emulator.endpoint_url()
    );
    println!("function environment: {}", env_file.display());
    for line in &lines {
        println!("  {line}");
    }
    println!("Ctrl-C stops the emulator.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
