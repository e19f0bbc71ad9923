//! Choosing the snapshotter. One test: it changes the environment, which
//! tests running in parallel threads would otherwise see.

mod snapshot_support;

use hoist::snapshot::{SnapshotError, Snapshots, Snapshotter, overlay_supported};
use snapshot_support::*;

#[test]
fn hoist_snapshotter_forces_the_choice_and_the_probe_decides_otherwise() {
    let (_dir, store) = new_store();
    set_snapshotter(Some("copy"));
    assert_eq!(Snapshots::open(&store).unwrap().snapshotter(), Snapshotter::Copy);
    set_snapshotter(Some("overlay"));
    assert_eq!(Snapshots::open(&store).unwrap().snapshotter(), Snapshotter::Overlay);
    set_snapshotter(Some("aufs"));
    let error = Snapshots::open(&store).unwrap_err();
    assert!(matches!(error, SnapshotError::UnknownSnapshotter { .. }));
    assert!(error.to_string().contains("`overlay` or `copy`"), "{error}");
    set_snapshotter(None);
    let probed = overlay_supported(&store.root().join("snapshots"));
    let expected = if probed { Snapshotter::Overlay } else { Snapshotter::Copy };
    assert_eq!(Snapshots::open(&store).unwrap().snapshotter(), expected);
    if is_root() {
        // Overlay is in /proc/filesystems on this machine; the probe must see it.
        let listed = std::fs::read_to_string("/proc/filesystems").unwrap().contains("overlay");
        assert_eq!(probed, listed);
    }
    // The probe leaves nothing behind.
    let leftovers: Vec<_> = std::fs::read_dir(store.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("probe-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Sets or removes `HOIST_SNAPSHOTTER`.
fn set_snapshotter(value: Option<&str>) {
    // SAFETY: the only test in this binary; no other thread reads the environment.
    unsafe {
        match value {
            Some(value) => std::env::set_var("HOIST_SNAPSHOTTER", value),
            None => std::env::remove_var("HOIST_SNAPSHOTTER"),
        }
    }
}
