//! Running `cargo` and `make` from inside a test, as a developer would from a shell.
//!
//! A test process inherits what cargo and nextest set for it: `CARGO_MANIFEST_DIR`,
//! `CARGO_PKG_NAME` and the like. A nested cargo that inherits them too builds a different
//! project than the developer's: build scripts that read them (ring's does, through
//! `rerun-if-env-changed`) run again, and every crate above them rebuilds into the shared
//! target directory. The outer build then finds its own artifacts stale and rebuilds them
//! back. On a cold CI machine that churn cost minutes and gigabytes of disk, so every
//! nested command starts from the environment a shell would give it.

use std::path::{Path, PathBuf};
use std::process::Command;

use emulator::workspace_root;

/// Variables a test harness or an outer `make` sets, which a nested build must not see.
const HARNESS_PREFIXES: [&str; 7] = [
    "NEXTEST",
    "__NEXTEST",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_",
    "CARGO_BIN_",
    "DEP_",
];
const HARNESS_VARIABLES: [&str; 10] = [
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
    "RUST_TEST_THREADS",
    // make's jobserver belongs to the outer make, which is not ours to join.
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "CARGO_MAKEFLAGS",
    "MAKEOVERRIDES",
];

/// Whether `key` is set by the test harness rather than by the developer's shell.
pub fn is_harness_variable(key: &str) -> bool {
    HARNESS_PREFIXES.iter().any(|p| key.starts_with(p)) || HARNESS_VARIABLES.contains(&key)
}

/// A command run in `dir` with the shell's environment, not the harness's, and cargo
/// pointed at the repository's target directory so dependencies built once are reused.
pub fn command(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if is_harness_variable(&key.to_string_lossy()) {
            command.env_remove(&key);
        }
    }
    command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_TERM_COLOR", "never");
    command
}

/// The target directory the outer build uses: `CARGO_TARGET_DIR` if set, else the
/// repository's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_command_sees_none_of_the_harness_variables_a_build_script_reads() {
        // cargo sets these for every test process; ring's build script reruns on them.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let command = command("cargo", Path::new("."));
        let removed: Vec<String> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .collect();
        for key in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
        ] {
            assert!(
                removed.iter().any(|r| r == key),
                "{key} reaches the nested cargo"
            );
        }
        assert!(!is_harness_variable("CARGO_HOME") && !is_harness_variable("PATH"));
    }
}
