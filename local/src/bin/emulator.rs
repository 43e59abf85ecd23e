//! `make emulator`: the emulator on a fixed port with template.yaml provisioned, for
//! running functions by hand (e.g. `cargo lambda watch` + `cargo lambda invoke`).
//!
//! Writes every function's environment, pointed at the emulator, to
//! `target/local/lambda.env` (the format `cargo lambda watch --env-file` reads), then
//! serves until Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;

use local::emulator::{Emulator, workspace_root};
use local::provision::provision;
use local::template::Template;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("EMULATOR_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    let emulator = Emulator::start_on(port).await?;
    let template_path = Template::workspace_template();
    let stack = provision(&emulator.sdk_config(), &Template::load(&template_path)?).await?;

    let mut env = BTreeMap::new();
    for function in stack.functions() {
        env.extend(stack.function_env(&function)?);
    }
    env.insert("AWS_ENDPOINT_URL".into(), emulator.endpoint_url());
    env.insert("AWS_REGION".into(), local::emulator::REGION.into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "test".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
    let env_file: PathBuf = workspace_root().join("target/local/lambda.env");
    if let Some(dir) = env_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
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
