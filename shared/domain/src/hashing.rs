//! Fingerprints of request payloads, for telling "the same request again" from "a
//! different request reusing an idempotency key".

use sha2::{Digest, Sha256};

/// Hex SHA-256 of a payload. Callers hash a canonical serialisation (the parsed request
/// re-serialised), so whitespace or key order in the client's JSON does not matter.
pub fn fingerprint(payload: &[u8]) -> String {
    Sha256::digest(payload)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_are_hex_sha256() {
        assert_eq!(
            super::fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
