//! Hostile or damaged archives are refused with a clear error, and the
//! store afterwards holds exactly what it held before.

mod common;
mod raw_tar;

use std::io::Write;
use std::path::Path;

use common::{busybox_rootfs, hoist, hoist_ok, stderr, tree_listing};
use raw_tar::RawTar;
use sha2::{Digest as _, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A docker-archive with one image of the given layer; `diff_id` overrides
/// the layer's true digest in the config.
fn docker_archive(layer: &[u8], diff_id: Option<&str>) -> Vec<u8> {
    let layer_hex = sha256_hex(layer);
    let diff_id = diff_id.map_or(format!("sha256:{layer_hex}"), str::to_string);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let config_hex = sha256_hex(config.as_bytes());
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{config_hex}","RepoTags":["evil:1"],"Layers":["blobs/sha256/{layer_hex}"]}}]"#
    );
    outer_archive(&[
        (format!("blobs/sha256/{layer_hex}"), layer.to_vec()),
        (format!("blobs/sha256/{config_hex}"), config.into_bytes()),
        ("manifest.json".to_string(), manifest.into_bytes()),
    ])
}

fn outer_archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A store with one good image; returns the work dir and the store root.
fn store_with_an_image() -> (tempfile::TempDir, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    hoist_ok(&root, &["import", rootfs.to_str().unwrap(), "good:1"]);
    (work, root)
}

/// Loads `archive`, expects failure mentioning `expected`, and checks the
/// store did not change.
fn assert_refused(work: &Path, root: &Path, archive: &[u8], expected: &str) {
    let before = tree_listing(root);
    let index_before = std::fs::read(root.join("index.json")).unwrap();
    let path = work.join("hostile.tar");
    std::fs::File::create(&path).unwrap().write_all(archive).unwrap();
    let out = hoist(root, &["load", "-i", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "load must fail: {}", stderr(&out));
    assert!(stderr(&out).contains(expected), "error should mention {expected:?}:\n{}", stderr(&out));
    assert_eq!(tree_listing(root), before, "the store changed");
    assert_eq!(std::fs::read(root.join("index.json")).unwrap(), index_before);
    assert!(hoist_ok(root, &["images"]).contains("good"));
    assert!(!work.join("evil").exists() && !Path::new("/evil").exists());
}

#[test]
fn layer_path_traversal_is_refused() {
    let (work, root) = store_with_an_image();
    let layer = RawTar::new().file("../../evil", b"x").finish();
    assert_refused(work.path(), &root, &docker_archive(&layer, None), "../../evil");
}

#[test]
fn layer_symlink_escape_is_refused() {
    let (work, root) = store_with_an_image();
    let layer = RawTar::new().symlink("etc", "/etc").file("etc/evil", b"x").finish();
    assert_refused(work.path(), &root, &docker_archive(&layer, None), "writes through the symlink");
}

#[test]
fn layer_hardlink_escape_is_refused() {
    let (work, root) = store_with_an_image();
    let layer = RawTar::new().hardlink("shadow", "../../../etc/shadow").finish();
    assert_refused(work.path(), &root, &docker_archive(&layer, None), "hardlink \"shadow\" points outside");
}

#[test]
fn archive_entry_outside_is_refused() {
    let (work, root) = store_with_an_image();
    let archive = RawTar::new().file("../evil", b"x").file("manifest.json", b"[]").finish();
    assert_refused(work.path(), &root, &archive, "archive entry \"../evil\" is refused");
}

#[test]
fn truncated_archive_is_refused() {
    let (work, root) = store_with_an_image();
    let saved = work.path().join("good.tar");
    hoist_ok(&root, &["save", "-o", saved.to_str().unwrap(), "good:1"]);
    let bytes = std::fs::read(&saved).unwrap();
    assert_refused(work.path(), &root, &bytes[..bytes.len() / 2], "truncated");
}

#[test]
fn layer_digest_mismatch_is_refused() {
    let (work, root) = store_with_an_image();
    let layer = RawTar::new().file("hello", b"hello").finish();
    let wrong = format!("sha256:{}", "0".repeat(64));
    assert_refused(work.path(), &root, &docker_archive(&layer, Some(&wrong)), "the archive is damaged");
}

#[test]
fn config_digest_mismatch_is_refused() {
    let (work, root) = store_with_an_image();
    let layer = RawTar::new().file("hello", b"hello").finish();
    let layer_hex = sha256_hex(&layer);
    let config =
        format!(r#"{{"os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{layer_hex}"]}}}}"#);
    let fake = "1".repeat(64);
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{fake}","RepoTags":["evil:1"],"Layers":["blobs/sha256/{layer_hex}"]}}]"#
    );
    let archive = outer_archive(&[
        (format!("blobs/sha256/{layer_hex}"), layer.clone()),
        (format!("blobs/sha256/{fake}"), config.into_bytes()),
        ("manifest.json".into(), manifest.into_bytes()),
    ]);
    assert_refused(work.path(), &root, &archive, "has digest");
}

#[test]
fn missing_layer_is_refused() {
    let (work, root) = store_with_an_image();
    let config = r#"{"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#;
    let manifest = r#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["nothere/layer.tar"]}]"#;
    let archive =
        outer_archive(&[("c.json".into(), config.into()), ("manifest.json".into(), manifest.into())]);
    assert_refused(work.path(), &root, &archive, "nothere/layer.tar");
}

#[test]
fn hostile_rootfs_import_is_refused() {
    let (work, root) = store_with_an_image();
    let before = tree_listing(&root);
    let path = work.path().join("evil-rootfs.tar");
    std::fs::write(&path, RawTar::new().file("../../evil", b"x").finish()).unwrap();
    let out = hoist(&root, &["import", path.to_str().unwrap(), "evil:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("../../evil"), "{}", stderr(&out));
    assert_eq!(tree_listing(&root), before);
}

#[test]
fn not_an_archive_is_refused() {
    let (work, root) = store_with_an_image();
    assert_refused(work.path(), &root, b"this is not a tar archive at all, just text", "");
}
