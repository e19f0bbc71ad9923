//! Several hoist processes on one store, and a hoist killed mid-write: the
//! store stays readable and loses no tagged image.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{busybox_rootfs, hoist_ok, tree_listing};

#[test]
fn parallel_imports_and_reads_all_land() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    hoist_ok(&root, &["images"]);
    let mut children = Vec::new();
    for n in 0..6 {
        let change = format!("ENV N={n}");
        children.push(
            Command::new(common::hoist_bin())
                .arg("--root")
                .arg(&root)
                .args(["import", "-c", &change, rootfs.to_str().unwrap(), &format!("img:{n}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        children.push(
            Command::new(common::hoist_bin())
                .arg("--root")
                .arg(&root)
                .args(["images", "--format", "json"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let listed = hoist_ok(&root, &["images"]);
    for n in 0..6 {
        assert!(listed.contains(&format!("img          {n} ")), "img:{n} missing:\n{listed}");
    }
}

#[test]
fn parallel_tags_and_removals_keep_the_index_whole() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    hoist_ok(&root, &["import", rootfs.to_str().unwrap(), "base:1"]);
    let mut children = Vec::new();
    for n in 0..8 {
        children.push(
            Command::new(common::hoist_bin())
                .arg("--root")
                .arg(&root)
                .args(["tag", "base:1", &format!("t{n}:x")])
                .output(),
        );
    }
    for out in children {
        assert!(out.unwrap().status.success());
    }
    let mut removals = Vec::new();
    for n in 0..4 {
        removals.push(
            Command::new(common::hoist_bin())
                .arg("--root")
                .arg(&root)
                .args(["rmi", &format!("t{n}:x")])
                .spawn()
                .unwrap(),
        );
    }
    for mut child in removals {
        assert!(child.wait().unwrap().success());
    }
    let listed = hoist_ok(&root, &["images"]);
    for n in 4..8 {
        assert!(listed.contains(&format!("t{n} ")), "{listed}");
    }
    assert!(listed.contains("base"));
}

#[test]
fn killed_load_leaves_the_store_as_it_was() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs_dir = work.path().join("big");
    std::fs::create_dir_all(&rootfs_dir).unwrap();
    // Incompressible content, so the archive is large enough to kill mid-way.
    let mut noise = std::fs::File::create(rootfs_dir.join("noise")).unwrap();
    let mut state: u64 = 0x1234_5678_9abc_def0;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..64 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        noise.write_all(&block).unwrap();
    }
    drop(noise);
    let big_tar = work.path().join("big.tar");
    common::run_ok(Command::new("tar").arg("-C").arg(&rootfs_dir).arg("-cf").arg(&big_tar).arg("."));
    let other = work.path().join("other");
    hoist_ok(&other, &["import", big_tar.to_str().unwrap(), "big:1"]);
    let archive = work.path().join("big-image.tar");
    hoist_ok(&other, &["save", "-o", archive.to_str().unwrap(), "big:1"]);

    let rootfs = busybox_rootfs(work.path());
    hoist_ok(&root, &["import", rootfs.to_str().unwrap(), "keep:1"]);
    let before = tree_listing(&root);

    let bytes = std::fs::read(&archive).unwrap();
    let mut child = Command::new(common::hoist_bin())
        .arg("--root")
        .arg(&root)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stdin.flush().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);

    // The next command finds the store readable and cleans the dead
    // process's temp files.
    assert!(hoist_ok(&root, &["images"]).contains("keep"));
    assert_eq!(tree_listing(&root), before);
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}
