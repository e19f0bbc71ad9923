//! Shared by the integration tests: the conformance folder, running the
//! `hoist` binary, a busybox root filesystem, a private `dockerd`, and the
//! registry servers (a real registry, a token server, a fault proxy and a
//! forward proxy) on loopback.
#![allow(dead_code)]

pub mod certificates;
pub mod dockerd;
pub mod fault_proxy;
pub mod forward_proxy;
pub mod hoist_env;
pub mod http;
pub mod image_archive;
pub mod loopback;
pub mod registry;
pub mod rootless;
pub mod sandbox;
pub mod token_server;
pub mod tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

pub fn hoist_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hoist")
}

/// Runs `hoist --root ROOT ARGS…` and returns its output.
pub fn hoist(root: &Path, args: &[&str]) -> Output {
    Command::new(hoist_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("hoist runs")
}

/// Like `hoist`, but panics with stderr unless it succeeds; returns stdout.
pub fn hoist_ok(root: &Path, args: &[&str]) -> String {
    let out = hoist(root, args);
    assert!(
        out.status.success(),
        "hoist {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command and panics with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A root filesystem tarball made from Debian's `busybox-static` by
/// `fixtures/busybox-rootfs.sh`: `/bin/busybox`, its applets as symlinks,
/// and a minimal `/etc`.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let tarball = dir.join("rootfs.tar");
    run_ok(Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/busybox-rootfs.sh")).arg(&tarball));
    tarball
}

/// Every file under a directory with its size, for before/after comparisons.
pub fn tree_listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            let rel = entry.path().strip_prefix(dir).unwrap().display().to_string();
            if meta.is_dir() {
                stack.push(entry.path());
                out.push((format!("{rel}/"), 0));
            } else {
                out.push((rel, meta.len()));
            }
        }
    }
    out.sort();
    out
}
