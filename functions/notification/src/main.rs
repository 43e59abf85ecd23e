//! Lambda entry point of notification: the one call that runs it. Init happens once per
//! cold start (`wiring::from_env`), then every invocation reuses what it built: see
//! `shared::runtime`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::run(notification::wiring::from_env).await
}
