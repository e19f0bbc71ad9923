//! Working roots: release, cleanup after a crash, and the rootless path.

mod common;
mod snapshot_support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hoist::idmap::{IdMap, IdRange};
use hoist::layer::{Compression, Entry, EntryKind};
use hoist::snapshot::{RootDescription, Snapshots, Snapshotter};
use hoist::store::Store;
use snapshot_support::*;

fn work_dir(store: &Store) -> PathBuf {
    store.root().join("snapshots/work")
}

#[test]
fn helper_touch_in_overlay() {
    let Some(merged) = std::env::var_os("HOIST_TEST_MERGED") else { return };
    fs::write(Path::new(&merged).join("keep/file"), "changed").unwrap();
}

#[test]
fn release_leaves_nothing_in_work() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let root = Snapshots::with_snapshotter(&store, snapshotter).unwrap().prepare(&[layer]).unwrap();
        fs::write(root.upper_dir().join("scratch"), "x").unwrap();
        assert!(!listing(&work_dir(&store)).is_empty());
        root.release().unwrap();
        assert_eq!(listing(&work_dir(&store)), Vec::<PathBuf>::new(), "{snapshotter:?}");
    }
}

#[test]
fn dropping_a_working_root_releases_it() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let root = Snapshots::with_snapshotter(&store, Snapshotter::Copy).unwrap().prepare(&[layer]).unwrap();
    drop(root);
    assert!(listing(&work_dir(&store)).is_empty());
}

#[test]
fn release_after_a_real_overlay_mount_removes_its_work_dir() {
    if !is_root() {
        return;
    }
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let root = Snapshots::with_snapshotter(&store, Snapshotter::Overlay).unwrap().prepare(&[layer]).unwrap();
    let merged = tempfile::tempdir().unwrap();
    in_mounted_overlay(&root.rootfs(), merged.path(), "helper_touch_in_overlay", &[]);
    let RootDescription::Overlay { work, .. } = root.rootfs() else { panic!("overlay") };
    assert!(work.join("work").exists(), "overlayfs made its work/work");
    root.release().unwrap();
    assert!(listing(&work_dir(&store)).is_empty());
}

/// Prepares a working root in the store `HOIST_TEST_HOLD` names, prints
/// its directory and waits to be killed.
#[test]
fn helper_hold_a_working_root() {
    let Some(store_root) = std::env::var_os("HOIST_TEST_HOLD") else { return };
    let store = Store::open(store_root).unwrap();
    let layer = base_layer(&store);
    let root = Snapshots::with_snapshotter(&store, Snapshotter::Copy).unwrap().prepare(&[layer]).unwrap();
    println!("HELD {}", root.upper_dir().display());
    std::thread::sleep(std::time::Duration::from_secs(600));
    drop(root);
}

#[test]
fn a_killed_process_working_root_is_removed_at_next_open() {
    let (_dir, store) = new_store();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_hold_a_working_root", "--nocapture", "--test-threads=1"])
        .env("HOIST_TEST_HOLD", store.root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let held = loop {
        let line = lines.next().expect("the helper prints its root").unwrap();
        // libtest prints the test's name on the same line, before it.
        if let Some((_, path)) = line.split_once("HELD ") {
            break PathBuf::from(path);
        }
    };
    assert!(held.exists());
    // A live holder keeps its root through another open.
    Snapshots::with_snapshotter(&store, Snapshotter::Copy).unwrap();
    assert!(held.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(held.exists(), "nothing cleaned up after the kill yet");
    Snapshots::with_snapshotter(&store, Snapshotter::Copy).unwrap();
    assert!(!held.exists());
    assert!(listing(&work_dir(&store)).is_empty());
}

/// The rootless checks, run by `rootless_unpack_and_diff_work` as an
/// unprivileged user.
#[test]
fn helper_rootless() {
    if std::env::var_os("HOIST_TEST_ROOTLESS").is_none() {
        return;
    }
    assert!(!is_root());
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let me = hoist::idmap::effective_uid();
    let my_group = hoist::idmap::effective_gid();
    let map = IdMap {
        uids: vec![IdRange { container_id: 0, host_id: me, size: 1 }],
        gids: vec![IdRange { container_id: 0, host_id: my_group, size: 1 }],
    };
    // The probe must answer, whatever the answer.
    let _ = hoist::snapshot::overlay_supported(&store.root().join("snapshots"));
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let snapshots = Snapshots::with_snapshotter(&store, snapshotter).unwrap().with_id_map(map.clone());
        let root = snapshots.prepare(&[layer]).unwrap();
        fs::write(root.upper_dir().join("made-inside"), "x").unwrap();
        let mut bytes = Vec::new();
        root.diff(&mut bytes, Compression::None, &[]).unwrap();
        let members = members(&bytes);
        assert_eq!(paths(&members), ["made-inside"], "{snapshotter:?}");
        let made = member(&members, "made-inside");
        assert_eq!((made.uid, made.gid), (0, 0), "{snapshotter:?}");
        root.release().unwrap();
    }
    rootless_overlay_mount(&store, &map);
    an_owner_past_the_subordinate_ids_is_refused(&store);
}

/// Rootless with subordinate ids, a layer's owners are kept; one the ranges
/// do not reach fails the unpack, naming the entry and where ids come from.
fn an_owner_past_the_subordinate_ids_is_refused(store: &Store) {
    let map = IdMap::rootless();
    let sub = map.uids.get(1).expect("the test user has subordinate ids");
    let mut far = Entry::new("far-away", EntryKind::File { size: 1 });
    far.uid = u64::from(sub.container_id + sub.size);
    let layer = store_entries(store, &[(far, &b"x"[..])]);
    let snapshots = Snapshots::with_snapshotter(store, Snapshotter::Overlay).unwrap();
    let error = snapshots.prepare(&[layer]).err().expect("an unmapped owner fails").to_string();
    assert!(error.contains("far-away") && error.contains("/etc/subuid"), "{error}");
    assert!(listing(&store.root().join("snapshots/partial")).is_empty());
}

/// A file only its owner could read, were it not mode 000.
fn secret_layer(store: &Store) -> hoist::snapshot::LayerBlob {
    let mut secret = Entry::new("secret", EntryKind::File { size: 6 });
    secret.mode = 0;
    store_entries(store, &[(secret, &b"secret"[..])])
}

/// The change a rootless RUN makes through a `userxattr` overlay mount.
#[test]
fn helper_rootless_changes() {
    let Some(merged) = std::env::var_os("HOIST_TEST_MERGED") else { return };
    let merged = Path::new(&merged);
    fs::write(merged.join("made-inside"), "x").unwrap();
    fs::remove_file(merged.join("base/delete-me")).unwrap();
    fs::remove_dir_all(merged.join("gone")).unwrap();
    fs::create_dir(merged.join("gone")).unwrap();
    fs::write(merged.join("secret"), "SECRET").unwrap();
}

fn rootless_overlay_mount(store: &Store, map: &IdMap) {
    assert!(
        hoist::snapshot::overlay_supported(&store.root().join("snapshots")),
        "overlayfs cannot be mounted in a user namespace on this kernel (needs Linux 5.11+ and no \
         sysctl forbidding unprivileged user namespaces): the rootless overlay path cannot be tested here"
    );
    let layers = [base_layer(store), secret_layer(store)];
    let snapshots =
        Snapshots::with_snapshotter(store, Snapshotter::Overlay).unwrap().with_id_map(map.clone());
    let root = snapshots.prepare(&layers).unwrap();
    let merged = tempfile::tempdir().unwrap();
    in_mounted_overlay(&root.rootfs(), merged.path(), "helper_rootless_changes", &[]);
    let mut bytes = Vec::new();
    root.diff(&mut bytes, Compression::None, &[]).unwrap();
    let diff = members(&bytes);
    assert_eq!(
        paths(&diff),
        ["base/", "base/.wh.delete-me", "gone/", "gone/.wh..wh..opq", "made-inside", "secret"]
    );
    let made = member(&diff, "made-inside");
    assert_eq!((made.uid, made.gid), (0, 0));
    let secret = member(&diff, "secret");
    assert_eq!((secret.mode, secret.contents.as_slice()), (0, &b"SECRET"[..]));
    root.release().unwrap();

    // The copy snapshotter copies and diffs the unreadable file too.
    let snapshots = Snapshots::with_snapshotter(store, Snapshotter::Copy).unwrap().with_id_map(map.clone());
    let root = snapshots.prepare(&layers).unwrap();
    let copied = fs::symlink_metadata(root.upper_dir().join("secret")).unwrap();
    assert_eq!((copied.permissions().mode() & 0o7777, copied.len()), (0, 6));
    let mut bytes = Vec::new();
    root.diff(&mut bytes, Compression::None, &[]).unwrap();
    assert!(members(&bytes).is_empty());
}

#[test]
fn rootless_unpack_and_diff_work() {
    if !is_root() {
        return;
    }
    // The user, with subordinate ids (so the owners check below runs).
    common::rootless::set_up_users();
    let user = common::rootless::WITH_SUBIDS;
    let output = Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "helper_rootless", "--nocapture", "--test-threads=1"])
        .env("HOIST_TEST_ROOTLESS", "1")
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Threads that open the snapshots (which sweeps stale working roots) while
/// others create theirs never lose a root being made: the sweep cannot see
/// a lock file between its creation and its locking.
#[test]
fn opening_while_others_prepare_never_removes_a_live_root() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..300 {
                    let snapshots = Snapshots::with_snapshotter(&store, Snapshotter::Overlay).unwrap();
                    let root = snapshots.prepare(&[layer]).unwrap();
                    std::thread::yield_now();
                    Snapshots::with_snapshotter(&store, Snapshotter::Overlay).unwrap();
                    assert!(root.upper_dir().is_dir(), "{} was removed", root.upper_dir().display());
                    root.release().unwrap();
                }
            });
        }
    });
    assert!(listing(&work_dir(&store)).is_empty());
}
