//! Shared by the integration tests: where the conformance vectors live.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$HOIST_CONFORMANCE_DIR`, else `../shared/conformance` beside the crate.
/// Panics when the folder is missing: the vectors are required, never skipped.
pub fn conformance_dir() -> PathBuf {
    let dir = std::env::var_os("HOIST_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/conformance")));
    assert!(
        dir.is_dir(),
        "conformance vectors not found at {} (set HOIST_CONFORMANCE_DIR or check out shared/ beside the repo)",
        dir.display()
    );
    dir
}
