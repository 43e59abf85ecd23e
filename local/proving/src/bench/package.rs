//! Package size: each function's zipped arm64 `bootstrap`, as Lambda downloads it.
//!
//! `cargo lambda build --release --arm64 --output-format zip` writes
//! `target/lambda/<binary>/bootstrap.zip`; Lambda's limit for a zip is 50 MB, but every
//! byte is downloaded and unpacked on a cold start, so the goal here is 3 MB.

use std::path::Path;

use super::BenchError;

/// One function's package.
#[derive(Debug, Clone)]
pub struct Package {
    /// The function's logical id.
    pub function: String,
    /// Its binary's name.
    pub binary: String,
    /// The zip's size, in bytes.
    pub zip_bytes: u64,
    /// The unzipped arm64 binary's size, in bytes.
    pub binary_bytes: u64,
}

/// Reads the sizes of the packages of `(function, binary)` pairs under `target`.
pub fn packages(target: &Path, functions: &[(String, String)]) -> Result<Vec<Package>, BenchError> {
    let size = |path: &Path| {
        std::fs::metadata(path).map(|m| m.len()).map_err(|e| {
            BenchError(format!(
                "{}: {e} (run `cargo lambda build --release --arm64 --output-format zip` first: `make bench` does)",
                path.display()
            ))
        })
    };
    functions
        .iter()
        .map(|(function, binary)| {
            Ok(Package {
                function: function.clone(),
                binary: binary.clone(),
                zip_bytes: size(&target.join("lambda").join(binary).join("bootstrap.zip"))?,
                binary_bytes: size(
                    &target
                        .join("aarch64-unknown-linux-gnu/release")
                        .join(binary),
                )?,
            })
        })
        .collect()
}
