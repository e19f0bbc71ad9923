//! Shared by the snapshot tests: base trees, layers in a store, a change
//! set applied the same way to both snapshotters, and a tar reader.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist::layer::{Compression, Entry, LayerWriter, write_dir};
use hoist::snapshot::{LayerBlob, RootDescription};
use hoist::store::Store;
use rustix::fs::{AtFlags, CWD, Gid, Timespec, Timestamps, Uid, XattrFlags};

/// A file capability granting CAP_NET_BIND_SERVICE (VFS_CAP_REVISION_2, effective).
pub const NET_BIND_CAPABILITY: [u8; 20] =
    [0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The mtime every file of a test tree gets, and that changes are stamped with.
pub const BASE_TIME: i64 = 1_600_000_000;
pub const CHANGE_TIME: i64 = 1_700_000_000;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

pub fn set_mtime(path: &Path, seconds: i64) {
    let time = Timespec { tv_sec: seconds, tv_nsec: 0 };
    let times = Timestamps { last_access: time, last_modification: time };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    rustix::fs::chownat(
        CWD,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).unwrap();
}

/// Every path under `root` stamped with `seconds`, deepest first.
pub fn stamp_tree(root: &Path, seconds: i64) {
    let mut paths = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
            paths.push(entry.path());
        }
    }
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for path in paths {
        set_mtime(&path, seconds);
    }
}

/// The base tree: files, directories, a symlink, a hardlink pair, xattrs,
/// a file capability and a non-root owner (the last two only as root).
pub fn build_base_tree(root: &Path) {
    for dir in ["base", "gone/deep", "keep"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (path, contents) in [
        ("base/delete-me", "bye"),
        ("base/chmod-me", "mode"),
        ("base/xattr-me", "attrs"),
        ("base/same-size", "aaaa"),
        ("gone/old", "old"),
        ("gone/deep/older", "older"),
        ("keep/file", "kept"),
        ("link-a", "linked"),
        ("cap-bin", "binary"),
        ("user-owned", "mine"),
    ] {
        fs::write(root.join(path), contents).unwrap();
    }
    fs::set_permissions(root.join("base/chmod-me"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::hard_link(root.join("link-a"), root.join("link-b")).unwrap();
    symlink("keep/file", root.join("sym")).unwrap();
    set_xattr(&root.join("base/xattr-me"), "user.x", b"1");
    if is_root() {
        set_xattr(&root.join("cap-bin"), "security.capability", &NET_BIND_CAPABILITY);
        chown(&root.join("user-owned"), 1000, 1000);
    }
    stamp_tree(root, BASE_TIME);
}

/// Writes the tree under `root` into the store as a layer blob. Made by an
/// unprivileged user, the tree's files are that user's: the layer records
/// them as root's, as an image's files are, not as the host uid.
pub fn store_tree(store: &Store, root: &Path, compression: Compression) -> LayerBlob {
    if !is_root() {
        let mut tar = Vec::new();
        write_dir(root, &mut tar, Compression::None).unwrap();
        owned_by_root(&mut tar);
        let mut writer = store.blob_writer().unwrap();
        let mut encoder = compression.compress(&mut writer).unwrap();
        std::io::Write::write_all(&mut encoder, &tar).unwrap();
        encoder.finish().unwrap();
        let digest = writer.commit(None).unwrap();
        let diff_id = hoist::layer::Digest::sha256(&tar);
        return LayerBlob { digest, diff_id };
    }
    let mut writer = store.blob_writer().unwrap();
    let summary = write_dir(root, &mut writer, compression).unwrap();
    let digest = writer.commit(Some(summary.digest)).unwrap();
    LayerBlob { digest, diff_id: summary.diff_id }
}

/// Sets uid and gid 0 in every header of an uncompressed tar.
fn owned_by_root(tar: &mut [u8]) {
    let positions: Vec<u64> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|entry| entry.unwrap().raw_header_position())
        .collect();
    for position in positions {
        let start = position as usize;
        let mut header = tar::Header::from_byte_slice(&tar[start..start + 512]).clone();
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        tar[start..start + 512].copy_from_slice(header.as_bytes());
    }
}

/// Writes `entries` (files get `contents`) into the store as a layer blob.
pub fn store_entries(store: &Store, entries: &[(Entry, &[u8])]) -> LayerBlob {
    let mut writer = store.blob_writer().unwrap();
    let mut layer = LayerWriter::new(&mut writer, Compression::None).unwrap();
    for (entry, contents) in entries {
        layer.append(entry, *contents).unwrap();
    }
    let summary = layer.finish().unwrap();
    let digest = writer.commit(Some(summary.digest)).unwrap();
    LayerBlob { digest, diff_id: summary.diff_id }
}

/// The base layer of most tests, in `store`.
pub fn base_layer(store: &Store) -> LayerBlob {
    let tree = tempfile::tempdir().unwrap();
    build_base_tree(tree.path());
    store_tree(store, tree.path(), Compression::Gzip)
}

/// The change set both snapshotters must turn into the same layer: a new
/// file, a deleted base file, a base dir deleted and recreated, a chmod,
/// a new hardlink pair, a new symlink, a chown, an xattr on a base file.
pub fn apply_changes(root: &Path) {
    let at = |p: &str| root.join(p);
    fs::write(at("new.txt"), "new").unwrap();
    fs::remove_file(at("base/delete-me")).unwrap();
    fs::remove_dir_all(at("gone")).unwrap();
    fs::create_dir(at("gone")).unwrap();
    fs::write(at("gone/fresh"), "fresh").unwrap();
    fs::set_permissions(at("base/chmod-me"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(at("pair1"), "pair").unwrap();
    fs::hard_link(at("pair1"), at("pair2")).unwrap();
    symlink("new.txt", at("new-link")).unwrap();
    fs::write(at("owned"), "owned").unwrap();
    chown(&at("owned"), 1000, 1000);
    set_xattr(&at("base/xattr-me"), "user.y", b"yes");
    for path in ["new.txt", "gone/fresh", "gone", "pair1", "new-link", "owned", "base"] {
        set_mtime(&at(path), CHANGE_TIME);
    }
}

/// Runs the test `helper` of this test binary with `env` inside a new
/// mount namespace (and, when not root, a user namespace mapping us to
/// root) where the overlay `root` describes is mounted at `merged` (which
/// the helper finds in `HOIST_TEST_MERGED`).
pub fn in_mounted_overlay(root: &RootDescription, merged: &Path, helper: &str, env: &[(&str, &str)]) {
    let options = root.overlay_options(!is_root()).expect("mountable paths");
    let namespaces = if is_root() { "-m" } else { "-Urm" };
    let exe = std::env::current_exe().unwrap();
    let script =
        r#"mount -t overlay overlay -o "$1" "$2" && exec "$3" --exact "$4" --nocapture --test-threads=1"#;
    let output = Command::new("unshare")
        .args([namespaces, "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(options)
        .arg(merged)
        .arg(exe)
        .arg(helper)
        .env("HOIST_TEST_MERGED", merged)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    // A misspelt helper name would run no test at all, and pass.
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "helper {helper} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One tar member, as a test compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub path: String,
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link: Option<String>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub contents: Vec<u8>,
}

/// The members of an uncompressed layer, in order.
pub fn members(layer: &[u8]) -> Vec<Member> {
    let mut archive = tar::Archive::new(layer);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut xattrs = BTreeMap::new();
        if let Some(extensions) = entry.pax_extensions().unwrap() {
            for extension in extensions {
                let extension = extension.unwrap();
                if let Some(name) = extension.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_owned(), extension.value_bytes().to_vec());
                }
            }
        }
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let link = entry.link_name_bytes().map(|l| String::from_utf8(l.into_owned()).unwrap());
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).unwrap();
        out.push(Member {
            path,
            kind: header.as_bytes()[156] as char,
            mode: header.mode().unwrap(),
            uid: header.uid().unwrap(),
            gid: header.gid().unwrap(),
            link,
            xattrs,
            contents,
        });
    }
    out
}

pub fn paths(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.path.as_str()).collect()
}

pub fn member<'a>(members: &'a [Member], path: &str) -> &'a Member {
    members.iter().find(|m| m.path == path).unwrap_or_else(|| panic!("{path} not in {:?}", paths(members)))
}

/// Everything under `dir`, relative, sorted.
pub fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = fs::read_dir(&current) else { continue };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
            out.push(entry.path().strip_prefix(dir).unwrap().to_owned());
        }
    }
    out.sort();
    out
}
