//! Lambda entry point for `POST /orders`: the one call that runs it. Init happens once
//! per cold start (`wiring::live`), then every request reuses what it built: see
//! `aws_adapters::runtime`.

#[tokio::main]
async fn main() -> Result<(), aws_adapters::runtime::Error> {
    aws_adapters::runtime::run_http(create_order::wiring::live).await
}
