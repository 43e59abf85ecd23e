//! Integration tests: real handlers, real AWS SDK clients, the moto emulator provisioned
//! from template.yaml. One binary, one module per area.

mod api_contract;
mod best_practices;
mod contention;
mod deliveries;
mod errors;
mod fork_health;
mod idempotency_keys;
mod idempotency_protocol;
mod least_privilege;
mod orders;
mod outbox;
mod release_profile;
mod retry_budget;
mod saga;
mod sample_events;
mod scaffold;
mod security_scan;
mod token;
mod workshop;
