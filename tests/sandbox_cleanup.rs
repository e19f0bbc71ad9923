//! After every kind of ending, the host has no new mount, child process or
//! temp dir. Each check runs in one test so that parallel tests cannot blur
//! the before/after comparison.
mod common;

use std::time::Duration;

use common::sandbox::*;
use hoist::sandbox::run;

fn tmp_entries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("hoist-sandbox-test-"))
        .collect();
    v.sort();
    v
}

fn assert_clean(
    what: &str,
    mounts: &[String],
    tmp: &[String],
    root: &std::path::Path,
    before_root: &[std::path::PathBuf],
) {
    assert_eq!(host_mounts(), mounts, "{what}: host mounts changed");
    assert_eq!(child_processes(), Vec::<u32>::new(), "{what}: processes left");
    assert_eq!(tmp_entries(), tmp, "{what}: /tmp changed");
    assert_eq!(entries(root), before_root, "{what}: root dir changed");
}

#[test]
fn nothing_is_left_after_success_failure_timeout_and_setup_error() {
    let root = rootfs();
    let mounts = host_mounts();
    let tmp = tmp_entries();
    let before_root = entries(root.path());

    let (s, _) = spec(root.path(), sh("sleep 0.1 & echo ok"));
    assert!(run(s).unwrap().status.success());
    assert_clean("success", &mounts, &tmp, root.path(), &before_root);

    let (s, _) = spec(root.path(), sh("exit 3"));
    assert!(!run(s).unwrap().status.success());
    assert_clean("failure", &mounts, &tmp, root.path(), &before_root);

    let (mut s, _) = spec(root.path(), sh("sleep 100 & sleep 100"));
    s.timeout = Some(Duration::from_millis(200));
    assert!(run(s).unwrap().timed_out);
    assert_clean("timeout", &mounts, &tmp, root.path(), &before_root);

    let (s, _) = spec(root.path(), argv(&["/no/such/binary"]));
    assert!(run(s).is_err());
    assert_clean("exec error", &mounts, &tmp, root.path(), &before_root);

    let (mut s, _) = spec(root.path(), argv(&["true"]));
    s.user = Some("ghost".into());
    assert!(run(s).is_err());
    assert_clean("setup error", &mounts, &tmp, root.path(), &before_root);
}
