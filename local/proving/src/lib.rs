//! The tools that prove the pipeline, locally or deployed, and operate it.
//!
//! - [`demo`] places the demo's orders on a local host and follows them (`make demo`);
//! - [`smoke`] proves a stack works, deployed (`make smoke`) or local (`make demo`);
//! - [`reliability`] runs the pipeline under load, duplicates, faults and hostile input,
//!   and [`audit`] checks afterwards that every invariant held (`make reliability`);
//! - [`heartbeat`] reports a long run's progress every 10 s;
//! - [`hostile`] is the malformed and unknown input those runs send;
//! - [`bench`] measures cold starts, memory, requests, throughput and cost (`make bench`);
//! - [`redrive`] moves dead letters back to their queue (`make redrive`).
//!
//! They run on the Lambda host (`lambda-host`) and the emulator (`emulator`), and
//! nothing runs on them: the command line `local` (`make dev`, `make demo`, …) is theirs.

pub mod audit;
pub mod bench;
pub mod demo;
pub mod heartbeat;
pub mod hostile;
pub mod redrive;
pub mod reliability;
pub mod smoke;
