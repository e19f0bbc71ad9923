//! Diffs: what a change to a working root becomes as a layer, with either
//! snapshotter, and that both give the same layer.

mod snapshot_support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hoist::idmap::{IdMap, IdRange};
use hoist::layer::Compression;
use hoist::snapshot::{Snapshots, Snapshotter, WorkingRoot};
use snapshot_support::*;

/// The merged view of an overlay, mounted by the parent test in a mount
/// namespace of this process alone; does nothing when run as a plain test.
#[test]
fn helper_apply_changes_in_overlay() {
    let Some(merged) = std::env::var_os("HOIST_TEST_MERGED") else { return };
    apply_changes(Path::new(&merged));
}

/// A working root with the standard change set applied, however the
/// snapshotter needs it applied.
fn changed_root(snapshots: &Snapshots, store_dir: &Path) -> WorkingRoot {
    let layer = base_layer(&Store::open(store_dir).unwrap());
    let root = snapshots.prepare(&[layer]).unwrap();
    match root.rootfs() {
        RootDescription::Dir(dir) => apply_changes(&dir),
        overlay => {
            let merged = tempfile::tempdir().unwrap();
            in_mounted_overlay(&overlay, merged.path(), "helper_apply_changes_in_overlay", &[]);
        }
    }
    root
}

use hoist::snapshot::RootDescription;
use hoist::store::Store;

fn diff_bytes(root: &WorkingRoot, ignore: &[PathBuf]) -> (Vec<u8>, hoist::layer::LayerSummary) {
    let mut bytes = Vec::new();
    let summary = root.diff(&mut bytes, Compression::None, ignore).unwrap();
    (bytes, summary)
}

fn check_change_set(layer: &[u8]) {
    let members = members(layer);
    assert_eq!(
        paths(&members),
        [
            "base/",
            "base/.wh.delete-me",
            "base/chmod-me",
            "base/xattr-me",
            "gone/",
            "gone/.wh..wh..opq",
            "gone/fresh",
            "new-link",
            "new.txt",
            "owned",
            "pair1",
            "pair2",
        ]
    );
    assert_eq!(member(&members, "base/chmod-me").mode, 0o600);
    assert_eq!(member(&members, "base/chmod-me").contents, b"mode");
    let xattrs = &member(&members, "base/xattr-me").xattrs;
    assert_eq!(xattrs.get("user.x").map(Vec::as_slice), Some(&b"1"[..]));
    assert_eq!(xattrs.get("user.y").map(Vec::as_slice), Some(&b"yes"[..]));
    assert!(xattrs.keys().all(|k| !k.contains("overlay")), "{xattrs:?}");
    assert_eq!(member(&members, "gone/fresh").contents, b"fresh");
    assert_eq!(member(&members, "new-link").link.as_deref(), Some("new.txt"));
    let owned = member(&members, "owned");
    assert_eq!((owned.uid, owned.gid), (1000, 1000));
    assert_eq!(member(&members, "pair2").kind, '1');
    assert_eq!(member(&members, "pair2").link.as_deref(), Some("pair1"));
    assert_eq!(member(&members, "pair1").contents, b"pair");
    assert_eq!(member(&members, "base/.wh.delete-me").kind, '0');
}

fn snapshots(store: &Store, snapshotter: Snapshotter) -> Snapshots {
    Snapshots::with_snapshotter(store, snapshotter).unwrap()
}

#[test]
fn overlay_upper_becomes_a_layer_with_whiteouts_links_and_xattrs() {
    let (dir, store) = new_store();
    let root = changed_root(&snapshots(&store, Snapshotter::Overlay), store.root());
    let (layer, _) = diff_bytes(&root, &[]);
    check_change_set(&layer);
    drop(dir);
}

#[test]
fn copy_changes_become_a_layer_with_whiteouts_links_and_xattrs() {
    let (_dir, store) = new_store();
    let root = changed_root(&snapshots(&store, Snapshotter::Copy), store.root());
    let (layer, _) = diff_bytes(&root, &[]);
    check_change_set(&layer);
}

#[test]
fn both_snapshotters_give_the_same_diff_id() {
    let (_dir, store) = new_store();
    let overlay = changed_root(&snapshots(&store, Snapshotter::Overlay), store.root());
    let copy = changed_root(&snapshots(&store, Snapshotter::Copy), store.root());
    let (overlay_bytes, overlay_summary) = diff_bytes(&overlay, &[]);
    let (copy_bytes, copy_summary) = diff_bytes(&copy, &[]);
    assert_eq!(paths(&members(&overlay_bytes)), paths(&members(&copy_bytes)));
    assert_eq!(members(&overlay_bytes), members(&copy_bytes));
    assert_eq!(overlay_summary.diff_id, copy_summary.diff_id);
}

#[test]
fn an_untouched_root_diffs_to_the_same_empty_layer() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let mut ids = Vec::new();
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let root = snapshots(&store, snapshotter).prepare(&[layer]).unwrap();
        let (bytes, summary) = diff_bytes(&root, &[]);
        assert!(members(&bytes).is_empty(), "{snapshotter:?}: {:?}", paths(&members(&bytes)));
        ids.push(summary.diff_id);
    }
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn ignored_paths_are_left_out_of_the_diff() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let root = snapshots(&store, snapshotter).prepare(&[layer]).unwrap();
        let dir = root.upper_dir();
        fs::create_dir_all(dir.join("dev/pts")).unwrap();
        fs::create_dir_all(dir.join("etc")).unwrap();
        fs::write(dir.join("etc/hosts"), "").unwrap();
        fs::write(dir.join("etc/kept"), "x").unwrap();
        let ignore = [PathBuf::from("dev"), PathBuf::from("/etc/hosts")];
        let (bytes, _) = diff_bytes(&root, &ignore);
        assert_eq!(paths(&members(&bytes)), ["etc/", "etc/kept"], "{snapshotter:?}");
    }
}

#[test]
fn copy_catches_a_content_change_that_keeps_size_and_mtime() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let root = snapshots(&store, Snapshotter::Copy).prepare(&[layer]).unwrap();
    let file = root.upper_dir().join("base/same-size");
    fs::write(&file, "bbbb").unwrap();
    set_mtime(&file, BASE_TIME); // touch -r: size and mtime as before
    let (bytes, _) = diff_bytes(&root, &[]);
    let members = members(&bytes);
    assert_eq!(paths(&members), ["base/", "base/same-size"]);
    assert_eq!(member(&members, "base/same-size").contents, b"bbbb");
}

#[test]
fn copy_ignores_a_rewrite_with_the_same_bytes() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let root = snapshots(&store, Snapshotter::Copy).prepare(&[layer]).unwrap();
    let file = root.upper_dir().join("base/same-size");
    fs::write(&file, "aaaa").unwrap();
    set_mtime(&file, BASE_TIME);
    let (bytes, _) = diff_bytes(&root, &[]);
    assert!(members(&bytes).is_empty());
}

#[test]
fn copy_writes_a_hardlink_to_a_base_file_as_a_pair() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let root = snapshots(&store, Snapshotter::Copy).prepare(&[layer]).unwrap();
    fs::hard_link(root.upper_dir().join("keep/file"), root.upper_dir().join("keep/again")).unwrap();
    let (bytes, _) = diff_bytes(&root, &[]);
    let members = members(&bytes);
    assert_eq!(paths(&members), ["keep/", "keep/again", "keep/file"]);
    assert_eq!(member(&members, "keep/file").link.as_deref(), Some("keep/again"));
}

#[test]
fn a_base_directory_replaced_by_a_file_needs_no_whiteout() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let root = snapshots(&store, Snapshotter::Copy).prepare(&[layer]).unwrap();
    let gone = root.upper_dir().join("gone");
    fs::remove_dir_all(&gone).unwrap();
    fs::write(&gone, "now a file").unwrap();
    let (bytes, _) = diff_bytes(&root, &[]);
    assert_eq!(paths(&members(&bytes)), ["gone"]);
}

#[test]
fn owners_are_mapped_on_unpack_and_translated_back_in_the_diff() {
    if !is_root() {
        return;
    }
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let map = IdMap {
        uids: vec![IdRange { container_id: 0, host_id: 100_000, size: 65536 }],
        gids: vec![IdRange { container_id: 0, host_id: 200_000, size: 65536 }],
    };
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let root = snapshots(&store, snapshotter).with_id_map(map.clone()).prepare(&[layer]).unwrap();
        let file = root.upper_dir().join("made-inside");
        fs::write(&file, "x").unwrap();
        chown(&file, 100_000, 200_000);
        let other = root.upper_dir().join("unmapped");
        fs::write(&other, "y").unwrap();
        chown(&other, 5000, 5000);
        let base = root.lowers().map_or(root.upper_dir(), |l| &l[0]).join("user-owned");
        let owner = fs::symlink_metadata(base).unwrap();
        assert_eq!((owner.uid(), owner.gid()), (101_000, 201_000), "unpacked with the map");
        let (bytes, _) = diff_bytes(&root, &[]);
        let members = members(&bytes);
        let inside = member(&members, "made-inside");
        assert_eq!((inside.uid, inside.gid), (0, 0), "{snapshotter:?}");
        let unmapped = member(&members, "unmapped");
        assert_eq!((unmapped.uid, unmapped.gid), (65534, 65534), "{snapshotter:?}");
    }
}

#[test]
fn file_capabilities_survive_a_copy_up() {
    if !is_root() {
        return;
    }
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let root = snapshots(&store, Snapshotter::Copy).prepare(&[layer]).unwrap();
    fs::set_permissions(
        root.upper_dir().join("cap-bin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let (bytes, _) = diff_bytes(&root, &[]);
    let members = members(&bytes);
    let capability = member(&members, "cap-bin").xattrs.get("security.capability").cloned();
    assert_eq!(capability.as_deref(), Some(&NET_BIND_CAPABILITY[..]));
}
