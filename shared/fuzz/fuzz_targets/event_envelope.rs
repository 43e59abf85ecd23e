//! Any bytes as an SQS message body: decoding an event envelope must say what is wrong
//! (the reason its message is dead-lettered with), never panic (a panic would fail the
//! whole batch, over and over, until every message in it reached the DLQ).
#![no_main]

use libfuzzer_sys::fuzz_target;
use domain::events::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data)
        && let Ok(envelope) = Envelope::decode(body)
    {
        // What decodes must encode again: consumers republish derived events.
        let _ = envelope.to_json();
    }
});
