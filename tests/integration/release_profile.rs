//! The release build Lambda gets is the one `Cargo.toml` describes. `cargo lambda build`
//! fills in the release-profile keys a manifest leaves out with its own defaults (among
//! them `panic = "abort"`, which would kill a warm process on a panic instead of letting
//! `lambda_runtime` report the invocation's error), so every such key is set on purpose.

use emulator::workspace_root;

/// The keys `cargo lambda` 1.x sets when the release profile does not.
const FILLED_IN_BY_CARGO_LAMBDA: &[&str] = &["strip", "lto", "codegen-units", "panic"];

#[test]
fn the_release_profile_sets_every_key_cargo_lambda_would_otherwise_choose() {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
        .expect("read the workspace Cargo.toml");
    let release: Vec<(&str, &str)> = manifest
        .lines()
        .skip_while(|line| line.trim() != "[profile.release]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect();
    for key in FILLED_IN_BY_CARGO_LAMBDA {
        assert!(
            release.iter().any(|(k, _)| k == key),
            "[profile.release] must set `{key}`, or `cargo lambda build` picks it: {release:?}"
        );
    }
    assert!(
        release.contains(&("panic", "\"unwind\"")),
        "a panicking invocation must fail alone, not take its warm process with it: {release:?}"
    );
}
