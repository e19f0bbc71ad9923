//! Unpacking layers into chain-ID-keyed layer dirs.

mod snapshot_support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use hoist::layer::{Compression, Digest, Entry, EntryKind};
use hoist::snapshot::{LayerBlob, RootDescription, Snapshots, Snapshotter, chain_ids};
use hoist::store::Store;
use snapshot_support::*;

fn snapshots(store: &Store, snapshotter: Snapshotter) -> Snapshots {
    Snapshots::with_snapshotter(store, snapshotter).unwrap()
}

fn file(path: &str, contents: &'static [u8]) -> (Entry, &'static [u8]) {
    (Entry::new(path, EntryKind::File { size: contents.len() as u64 }), contents)
}

fn dir(path: &str) -> (Entry, &'static [u8]) {
    (Entry::new(path, EntryKind::Dir), b"")
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut value = vec![0u8; 64];
    let n = rustix::fs::lgetxattr(path, name, &mut value).ok()?;
    value.truncate(n);
    Some(value)
}

/// Checks the merged view of base + whiteout layer, mounted by
/// `real_overlayfs_reads_the_layer_dirs` at `HOIST_TEST_MERGED`.
#[test]
fn helper_check_merged_view() {
    let Some(merged) = std::env::var_os("HOIST_TEST_MERGED") else { return };
    let merged = Path::new(&merged);
    assert!(!merged.join("base/delete-me").exists());
    assert!(!merged.join("keep/file").exists());
    assert!(merged.join("base/chmod-me").exists());
    assert_eq!(listing(&merged.join("gone")), [PathBuf::from("new")]);
    assert_eq!(fs::read(merged.join("gone/new")).unwrap(), b"new");
}

#[test]
fn real_overlayfs_reads_the_layer_dirs() {
    if !is_root() {
        return;
    }
    let (_dir, store) = new_store();
    let layers = [base_layer(&store), whiteout_layer(&store)];
    let root = snapshots(&store, Snapshotter::Overlay).prepare(&layers).unwrap();
    let merged = tempfile::tempdir().unwrap();
    in_mounted_overlay(&root.rootfs(), merged.path(), "helper_check_merged_view", &[]);
}

fn whiteout_layer(store: &Store) -> LayerBlob {
    store_entries(
        store,
        &[
            dir("base"),
            (Entry::new("base/delete-me", EntryKind::Whiteout), b""),
            (Entry::new("keep/file", EntryKind::Whiteout), b""),
            dir("gone"),
            (Entry::new("gone", EntryKind::OpaqueWhiteout), b""),
            file("gone/new", b"new"),
        ],
    )
}

#[test]
fn unused_layer_dirs_are_removed_and_kept_ones_stay() {
    let (_dir, store) = new_store();
    let layers = [base_layer(&store), whiteout_layer(&store)];
    let snapshots = snapshots(&store, Snapshotter::Overlay);
    let dirs = snapshots.unpack(&layers).unwrap();
    let chain = chain_ids(&[layers[0].diff_id, layers[1].diff_id]);
    assert_eq!(snapshots.remove_unused(&chain[..1]).unwrap(), [chain[1]]);
    assert!(dirs[0].exists() && !dirs[1].exists());
    assert!(listing(&store.root().join("snapshots/partial")).is_empty());
}

#[test]
fn layer_dirs_are_keyed_by_chain_id() {
    let (_dir, store) = new_store();
    let lower = base_layer(&store);
    let upper = store_entries(&store, &[file("top", b"top")]);
    let snapshots = snapshots(&store, Snapshotter::Overlay);
    let dirs = snapshots.unpack(&[lower, upper]).unwrap();
    let chain = chain_ids(&[lower.diff_id, upper.diff_id]);
    let expected: Vec<PathBuf> =
        chain.iter().map(|id| store.root().join("snapshots/sha256").join(id.hex())).collect();
    assert_eq!(dirs, expected);
    assert_eq!(fs::read(dirs[0].join("keep/file")).unwrap(), b"kept");
    // Each layer dir holds only its own layer's files.
    assert_eq!(listing(&dirs[1]), [PathBuf::from("top")]);
}

#[test]
fn unpacking_again_is_a_no_op() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let snapshots = snapshots(&store, snapshotter);
        let first = snapshots.unpack(&[layer]).unwrap();
        let before = fs::metadata(first[0].join("keep/file")).unwrap();
        let again = snapshots.unpack(&[layer]).unwrap();
        let after = fs::metadata(again[0].join("keep/file")).unwrap();
        assert_eq!(first, again);
        assert_eq!((before.ino(), before.ctime_nsec()), (after.ino(), after.ctime_nsec()));
    }
}

#[test]
fn whiteouts_become_character_devices_and_opaque_dirs_get_the_xattr() {
    let (_dir, store) = new_store();
    let lower = base_layer(&store);
    let upper = whiteout_layer(&store);
    let dirs = snapshots(&store, Snapshotter::Overlay).unpack(&[lower, upper]).unwrap();
    let top = &dirs[1];
    for whiteout in ["base/delete-me", "keep/file"] {
        let metadata = fs::symlink_metadata(top.join(whiteout)).unwrap();
        assert!(metadata.file_type().is_char_device() && metadata.rdev() == 0, "{whiteout}");
    }
    // keep/ was not in the layer: it was made with the lower layer's metadata.
    assert_eq!(fs::metadata(top.join("keep")).unwrap().mtime(), BASE_TIME);
    let opaque = if is_root() { "trusted.overlay.opaque" } else { "user.overlay.opaque" };
    assert_eq!(xattr(&top.join("gone"), opaque).as_deref(), Some(&b"y"[..]));
    assert!(xattr(&top.join("base"), opaque).is_none());
}

#[test]
fn the_copy_snapshotter_honours_whiteouts_and_opaque_dirs() {
    let (_dir, store) = new_store();
    let lower = base_layer(&store);
    let upper = store_entries(
        &store,
        &[
            (Entry::new("base/delete-me", EntryKind::Whiteout), b""),
            dir("gone"),
            (Entry::new("gone", EntryKind::OpaqueWhiteout), b""),
            file("gone/new", b"new"),
        ],
    );
    let root = snapshots(&store, Snapshotter::Copy).prepare(&[lower, upper]).unwrap();
    let RootDescription::Dir(dir) = root.rootfs() else { panic!("copy gives a dir") };
    assert!(!dir.join("base/delete-me").exists());
    assert!(dir.join("base/chmod-me").exists());
    assert_eq!(listing(&dir.join("gone")), [PathBuf::from("new")]);
    assert_eq!(
        fs::metadata(dir.join("link-a")).unwrap().ino(),
        fs::metadata(dir.join("link-b")).unwrap().ino()
    );
    assert_eq!(fs::read_link(dir.join("sym")).unwrap(), PathBuf::from("keep/file"));
}

#[test]
fn compressed_blobs_of_every_kind_unpack() {
    let (_dir, store) = new_store();
    let tree = tempfile::tempdir().unwrap();
    build_base_tree(tree.path());
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let layer = store_tree(&store, tree.path(), compression);
        let dirs = snapshots(&store, Snapshotter::Copy).unpack(&[layer]).unwrap();
        assert_eq!(fs::read(dirs[0].join("base/xattr-me")).unwrap(), b"attrs", "{compression:?}");
    }
}

#[test]
fn a_hostile_layer_fails_and_leaves_no_layer_dir() {
    let (_dir, store) = new_store();
    // A tar whose member climbs out with `..`, written by hand: the layer
    // writer refuses such names.
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_size(1);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(&[b'x'; 512][..]);
    bytes.extend_from_slice(&[0; 1024]);
    let digest = store.put_blob(&bytes).unwrap();
    let layer = LayerBlob { digest, diff_id: Digest::sha256(&bytes) };
    let error = snapshots(&store, Snapshotter::Overlay).unpack(&[layer]).unwrap_err();
    assert!(error.to_string().contains("climbs out"), "{error}");
    assert!(listing(&store.root().join("snapshots/sha256")).is_empty());
    assert!(listing(&store.root().join("snapshots/partial")).is_empty());
    assert!(!store.root().parent().unwrap().join("escape").exists());
}

#[test]
fn a_wrong_diff_id_fails_and_leaves_no_layer_dir() {
    let (_dir, store) = new_store();
    let mut layer = base_layer(&store);
    layer.diff_id = Digest::sha256(b"something else");
    assert!(snapshots(&store, Snapshotter::Overlay).unpack(&[layer]).is_err());
    assert!(listing(&store.root().join("snapshots/sha256")).is_empty());
}

#[test]
fn concurrent_unpacks_of_one_layer_agree() {
    let (_dir, store) = new_store();
    let layer = base_layer(&store);
    let results: Vec<Vec<PathBuf>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                scope.spawn(move || snapshots(&store, Snapshotter::Overlay).unpack(&[layer]).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(fs::read_dir(store.root().join("snapshots/sha256")).unwrap().count(), 1);
    assert_eq!(fs::read(results[0][0].join("keep/file")).unwrap(), b"kept");
}

#[test]
fn a_hardlink_to_a_lower_layer_file_is_unpacked() {
    let (_dir, store) = new_store();
    let lower = base_layer(&store);
    let upper = store_entries(
        &store,
        &[(Entry::new("keep/again", EntryKind::Hardlink { target: "keep/file".into() }), b"")],
    );
    let dirs = snapshots(&store, Snapshotter::Overlay).unpack(&[lower, upper]).unwrap();
    assert_eq!(fs::read(dirs[1].join("keep/again")).unwrap(), b"kept");
    let (a, b) =
        (fs::metadata(dirs[1].join("keep/again")).unwrap(), fs::metadata(dirs[1].join("keep/file")).unwrap());
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn fifty_layers_unpack_and_prepare() {
    let (_dir, store) = new_store();
    let mut layers = vec![base_layer(&store)];
    let names: Vec<String> = (0..49).map(|i| format!("layer-{i:02}")).collect();
    for name in &names {
        layers.push(store_entries(
            &store,
            &[file(name, b"x"), (Entry::new("keep/file", EntryKind::Whiteout), b"")],
        ));
    }
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let root = snapshots(&store, snapshotter).prepare(&layers).unwrap();
        match root.rootfs() {
            RootDescription::Overlay { lower, .. } => {
                assert_eq!(lower.len(), 50);
                assert!(lower[0].join("layer-48").exists(), "top layer first");
            }
            RootDescription::Dir(dir) => {
                assert!(names.iter().all(|n| dir.join(n).exists()));
                assert!(!dir.join("keep/file").exists());
            }
        }
    }
}

#[test]
fn an_opaque_marker_behind_a_replaced_directory_marks_nothing_outside() {
    let (_dir, store) = new_store();
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir(outside.path().join("b")).unwrap();
    let layer = store_entries(
        &store,
        &[
            dir("a"),
            dir("a/b"),
            (Entry::new("a/b", EntryKind::OpaqueWhiteout), b""),
            (Entry::new("a", EntryKind::Symlink { target: outside.path().to_owned() }), b""),
        ],
    );
    // Whether or not the layer is accepted, nothing outside changes.
    let _ = snapshots(&store, Snapshotter::Overlay).unpack(&[layer]);
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        assert!(xattr(&outside.path().join("b"), name).is_none(), "{name}");
    }
}
