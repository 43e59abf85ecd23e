//! Lambda entry point of payment: the one call that runs it. Init happens once per cold
//! start (`wiring::live`), then every invocation reuses what it built: see
//! `aws_adapters::runtime`.

#[tokio::main]
async fn main() -> Result<(), aws_adapters::runtime::Error> {
    aws_adapters::runtime::run(payment::wiring::live).await
}
