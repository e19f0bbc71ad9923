//! A directory tree described as data, so two trees compare with `==`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    /// `dir`, `file <sha256>`, `symlink -> target`, `char 1:3`, `block 7:0`, `fifo`.
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
    /// For a file with several names, the first of them in sorted order.
    pub first_name: Option<PathBuf>,
}

/// Every path under `root` (not `root` itself), described.
pub fn listing(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut paths = Vec::new();
    collect(root, Path::new(""), &mut paths);
    paths.sort();
    let mut first_names: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for path in paths {
        let full = root.join(&path);
        let md = fs::symlink_metadata(&full).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            format!("file {}", hex(&Sha256::digest(fs::read(&full).unwrap())))
        } else if ft.is_symlink() {
            format!("symlink -> {}", fs::read_link(&full).unwrap().display())
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = md.rdev();
            let word = if ft.is_char_device() { "char" } else { "block" };
            format!("{word} {}:{}", libc_major(rdev), libc_minor(rdev))
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let first_name = if !ft.is_dir() && md.nlink() > 1 {
            Some(first_names.entry(md.ino()).or_insert_with(|| path.clone()).clone())
        } else {
            None
        };
        nodes.insert(
            path,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                xattrs: xattrs(&full),
                first_name,
            },
        );
    }
    nodes
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    for child in fs::read_dir(root.join(rel)).unwrap() {
        let child = child.unwrap();
        let path = rel.join(child.file_name());
        let ft = child.file_type().unwrap();
        if ft.is_socket() {
            continue;
        }
        if ft.is_dir() {
            collect(root, &path, out);
        }
        out.push(path);
    }
}

fn xattrs(path: &Path) -> BTreeMap<OsString, Vec<u8>> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0);
    names[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty() && *n != b"security.selinux")
        .map(|name| {
            let mut value = vec![0u8; 4096];
            let len = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap();
            value.truncate(len);
            (std::ffi::OsStr::from_bytes(name).to_owned(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn libc_major(rdev: u64) -> u32 {
    rustix::fs::major(rdev)
}

fn libc_minor(rdev: u64) -> u32 {
    rustix::fs::minor(rdev)
}
