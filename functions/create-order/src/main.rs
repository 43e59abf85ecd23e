//! Lambda entry point for `POST /orders`: the one call that runs it. Init happens once
//! per cold start (`wiring::from_env`), then every request reuses what it built: see
//! `shared::runtime`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::run_http(create_order::wiring::from_env).await
}
