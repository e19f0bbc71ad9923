mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::sandbox::*;
use hoist::sandbox::{RootFs, SandboxSpec, run};

struct Layers {
    _dir: tempfile::TempDir,
    lower: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
}

/// A busybox base layer at the bottom and `extra` layers above it.
fn layers(extra: usize, name_len: usize) -> Layers {
    let dir = tempfile::Builder::new().prefix("hoist-overlay-test-").tempdir_in("/tmp").unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir(&base).unwrap();
    populate_rootfs(&base);
    let mut lower = vec![base];
    for i in 0..extra {
        let l = dir.path().join(format!("{i:04}-{}", "l".repeat(name_len)));
        std::fs::create_dir_all(l.join("layers")).unwrap();
        std::fs::write(l.join("layers").join(format!("{i:04}")), format!("{i}\n")).unwrap();
        lower.insert(0, l);
    }
    let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    Layers { _dir: dir, lower, upper, work }
}

fn overlay_spec(l: &Layers, argv: Vec<String>) -> (SandboxSpec, Captured) {
    let cap = Captured::default();
    let root = RootFs::Overlay { lower: l.lower.clone(), upper: l.upper.clone(), work: l.work.clone() };
    let mut spec = SandboxSpec::new(root, argv);
    spec.output = cap.output();
    (spec, cap)
}

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn overlay_over_two_lowers_writes_land_in_upper() {
    let l = layers(1, 4);
    std::fs::write(l.lower[0].join("top-file"), "top\n").unwrap();
    let before: Vec<Vec<String>> = l.lower.iter().map(|d| tree(d)).collect();
    let (spec, cap) =
        overlay_spec(&l, sh("cat /top-file /layers/0000; echo new > /new-file; echo more >> /top-file"));
    let out = run(spec).unwrap();
    assert!(out.status.success(), "{}", cap.stderr());
    assert_eq!(cap.stdout(), "top\n0\n");
    assert_eq!(std::fs::read_to_string(l.upper.join("new-file")).unwrap(), "new\n");
    assert_eq!(std::fs::read_to_string(l.upper.join("top-file")).unwrap(), "top\nmore\n");
    let after: Vec<Vec<String>> = l.lower.iter().map(|d| tree(d)).collect();
    assert_eq!(before, after);
    assert_eq!(std::fs::read_to_string(l.lower[0].join("top-file")).unwrap(), "top\n");
}

#[test]
fn deleting_a_lower_file_leaves_a_whiteout_in_upper() {
    let l = layers(1, 4);
    let (spec, cap) = overlay_spec(&l, sh("rm /layers/0000"));
    assert!(run(spec).unwrap().status.success(), "{}", cap.stderr());
    let meta = std::fs::symlink_metadata(l.upper.join("layers/0000")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), 0);
}

#[test]
fn mount_points_do_not_land_in_upper() {
    let l = layers(1, 4);
    let (spec, _) = overlay_spec(&l, argv(&["true"]));
    let out = run(spec).unwrap();
    assert!(out.status.success());
    // etc exists in the base layer; the only trace allowed is its copy-up.
    let left = tree(&l.upper);
    assert!(left.iter().all(|p| p == "etc"), "{left:?}");
}

#[test]
fn many_lowers_beyond_the_mount_option_limit_work() {
    let l = layers(300, 40);
    let total: usize = l.lower.iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(total > 4096, "{total}");
    let (spec, cap) = overlay_spec(&l, sh("ls /layers | wc -l; cat /layers/0000 /layers/0299"));
    let out = run(spec).unwrap();
    assert!(out.status.success(), "{}", cap.stderr());
    assert_eq!(cap.stdout(), "300\n0\n299\n");
}

#[test]
fn overlay_is_supported_here() {
    let dir = tempfile::tempdir().unwrap();
    assert!(hoist::snapshot::overlay_supported(dir.path()));
}
