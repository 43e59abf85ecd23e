//! The local cloud: template.yaml's topology on the moto emulator, and Lambda's event
//! sources emulated around real handlers.
//!
//! - [`emulator`] starts moto on a free loopback port and stops it again;
//! - [`template`] reads template.yaml and resolves its intrinsics to local names;
//! - [`provision`] creates the template's tables, topics, queues and subscriptions;
//! - [`invoke`] is the JSON-in/JSON-out shape of a Lambda invocation;
//! - [`streams`] emulates a DynamoDB stream event source mapping;
//! - [`smoke`] proves a stack works, deployed (`make smoke`) or local (`make demo`).
//!
//! The template is the only source of truth: nothing here names a table, a queue or a
//! function of this project.

pub mod audit;
pub mod bench;
pub mod chaos;
pub mod demo;
pub mod emulator;
pub mod filter;
pub mod heartbeat;
pub mod host;
pub mod hostile;
pub mod http_client;
pub mod intrinsics;
pub mod invoke;
pub mod pipeline;
pub mod provision;
pub mod queues;
pub mod redrive;
pub mod reliability;
pub mod signal;
pub mod smoke;
pub mod streams;
pub mod template;
