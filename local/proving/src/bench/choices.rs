//! `make bench-choices`: what each release-profile and dependency-feature choice buys,
//! measured, into `docs/release-profile.md`.
//!
//! `make bench` sizes the packages as they are. This builds one function, create-order
//! (one of the two largest packages), for arm64 once as committed and then once per
//! choice with only that choice turned back, and records the zipped package and the
//! binary. A profile variant recompiles each crate for arm64 (about 3 minutes on 2 cores),
//! which is why this is a command of its own: run it when the profile or the dependencies
//! change. Build times are not reported: the variants share a target directory, so each
//! reuses what an earlier one built and their times do not compare.
//!
//! A profile setting is turned back with Cargo's `CARGO_PROFILE_RELEASE_*` environment
//! variables and a feature with `--features`, so `Cargo.toml` is never edited.

use std::path::Path;
use std::process::Command;

use super::BenchError;
use super::package::packages;
use super::report::mb;

/// The function every variant builds: one of the two largest packages (payment's is
/// within 2 %), so close to the upper bound.
pub const BINARY: &str = "create-order";

/// One choice of the release build, and the variant that turns it back.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    /// What `Cargo.toml` chose.
    pub chosen: &'static str,
    /// What the variant builds instead.
    pub instead: &'static str,
    /// Profile overrides for the variant, as Cargo environment variables.
    pub env: &'static [(&'static str, &'static str)],
    /// Features the variant turns on (`--features`).
    pub features: &'static str,
    /// Why the choice is worth its cost, for the page.
    pub why: &'static str,
}

/// The committed build, then one variant per choice. The first entry is the baseline.
pub const CHOICES: &[Choice] = &[
    Choice {
        chosen: "the release build as committed",
        instead: "",
        env: &[],
        features: "",
        why: "",
    },
    Choice {
        chosen: "`opt-level = \"s\"`",
        instead: "`opt-level = 3`",
        env: &[("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")],
        features: "",
        why: "smaller code to download and map; the functions wait on the network, not the CPU",
    },
    Choice {
        chosen: "`lto = \"fat\"`",
        instead: "`lto = \"thin\"`",
        env: &[("CARGO_PROFILE_RELEASE_LTO", "thin")],
        features: "",
        why: "whole-program optimisation drops the parts of the SDK crates a function never calls",
    },
    Choice {
        chosen: "`lto = \"fat\"`",
        instead: "`lto = false`",
        env: &[("CARGO_PROFILE_RELEASE_LTO", "false")],
        features: "",
        why: "as above; without it each crate is optimised alone",
    },
    Choice {
        chosen: "`codegen-units = 1`",
        instead: "`codegen-units = 16`",
        env: &[("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")],
        features: "",
        why: "one unit per crate lets the optimiser see all of it; the parallelism it costs is \
              won back by building several crates at once",
    },
    Choice {
        chosen: "`strip = \"symbols\"`",
        instead: "`strip = \"none\"`",
        env: &[("CARGO_PROFILE_RELEASE_STRIP", "none")],
        features: "",
        why: "symbols are not needed to run; a panic's message still names its file and line",
    },
    Choice {
        chosen: "`panic = \"unwind\"`",
        instead: "`panic = \"abort\"`",
        env: &[("CARGO_PROFILE_RELEASE_PANIC", "abort")],
        features: "",
        why: "kept although abort is smaller: with unwind, `lambda_runtime` reports a panicking \
              invocation as an error and the warm process lives on; with abort the process dies. \
              Set explicitly: `cargo lambda` builds with abort when the profile says nothing",
    },
    Choice {
        chosen: "rustls with `ring` (`aws_adapters::sdk::https_client`)",
        instead: "rustls with aws-lc-rs, the SDK's default (`aws-adapters/aws-lc`)",
        env: &[],
        features: "aws-adapters/aws-lc",
        why: "the same TLS client without aws-lc's C library, the longest single step of a \
              build; aws-lc's FIPS mode and post-quantum key exchange are one feature away",
    },
    Choice {
        chosen: "AWS SDK crates with `default-features = false`",
        instead: "their default features (`aws-adapters/sdk-default-features`)",
        env: &[],
        features: "aws-adapters/sdk-default-features",
        why: "only what is used: the defaults add a second, older HTTP and TLS stack (hyper \
              0.14, rustls 0.21), aws-lc and the SSO and credential-process providers",
    },
];

/// One variant's build, measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The choice the variant turned back (the first is the baseline).
    pub choice: Choice,
    /// The zipped package, in bytes.
    pub zip_bytes: u64,
    /// The stripped (or not) arm64 binary, in bytes.
    pub binary_bytes: u64,
}

/// Builds every variant into `target_dir`, one after the other, with `cargo lambda` from
/// `PATH`. The variants share the target directory, so the host tools (build scripts,
/// proc macros) are built once, by the baseline.
pub fn measure(workspace: &Path, target_dir: &Path) -> Result<Vec<Measured>, BenchError> {
    CHOICES
        .iter()
        .map(|choice| {
            println!(
                "building {BINARY} for arm64: {}",
                if choice.instead.is_empty() {
                    choice.chosen
                } else {
                    choice.instead
                }
            );
            build(workspace, target_dir, choice)
        })
        .collect()
}

fn build(workspace: &Path, target_dir: &Path, choice: &Choice) -> Result<Measured, BenchError> {
    let mut command = Command::new("cargo");
    command
        .current_dir(workspace)
        .args(["lambda", "build", "--release", "--arm64", "--locked"])
        .args(["--output-format", "zip", "--package", BINARY])
        .env("CARGO_TARGET_DIR", target_dir)
        .envs(choice.env.iter().copied());
    if !choice.features.is_empty() {
        command.args(["--features", choice.features]);
    }
    let status = command
        .status()
        .map_err(|e| BenchError(format!("cargo lambda build: {e}")))?;
    if !status.success() {
        return Err(BenchError(format!(
            "cargo lambda build of {BINARY} ({}) failed: {status}",
            choice.instead
        )));
    }
    let built = packages(target_dir, &[(BINARY.to_owned(), BINARY.to_owned())])?;
    let package = built
        .first()
        .ok_or_else(|| BenchError(format!("no package for {BINARY}")))?;
    Ok(Measured {
        choice: *choice,
        zip_bytes: package.zip_bytes,
        binary_bytes: package.binary_bytes,
    })
}

/// The page: each choice, what turning it back does to the package, and why it stays.
pub fn report(measured: &[Measured], machine: &str, date: &str) -> String {
    use std::fmt::Write;

    let mut doc = format!(
        "# What the release build's choices buy\n\n\
         Generated by `make bench-choices` (`local/proving/src/bench/choices.rs`) on {date}: do not \
         edit by hand. `{BINARY}`, one of the two largest functions, built for arm64 with \
         `cargo lambda build --release --arm64 --output-format zip`: once as `Cargo.toml` has \
         it, then once per choice with only that choice turned back. Measured on {machine}. \
         `make bench` (docs/performance.md) sizes every function's package as committed.\n\n"
    );
    let Some(baseline) = measured.first() else {
        doc.push_str("Nothing was measured.\n");
        return doc;
    };
    let _ = writeln!(
        doc,
        "| choice | turned back to | zipped package | binary | why it stays |\n\
         |---|---|---:|---:|---|\n\
         | {} | | {} | {} | |",
        baseline.choice.chosen,
        mb(baseline.zip_bytes),
        mb(baseline.binary_bytes),
    );
    for m in &measured[1..] {
        let change = |now: u64, then: u64| {
            format!(
                "{} ({:+.0} %)",
                mb(now),
                (now as f64 / then.max(1) as f64 - 1.0) * 100.0
            )
        };
        let _ = writeln!(
            doc,
            "| {} | {} | {} | {} | {} |",
            m.choice.chosen,
            m.choice.instead,
            change(m.zip_bytes, baseline.zip_bytes),
            change(m.binary_bytes, baseline.binary_bytes),
            m.choice.why
        );
    }
    doc.push_str(
        "\nNot measured, because turning it back means editing code, not a setting: \
         `lambda_http` with only the `apigw_rest` feature, so the other API Gateway and ALB \
         event shapes are not compiled in.\n",
    );
    doc
}
