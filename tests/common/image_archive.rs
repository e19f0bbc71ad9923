//! An image archive (what `docker save` or `hoist save` writes) read by the
//! tests' own code: the tar crate for the archive and its layers, and the
//! layers applied in memory with OCI whiteout rules. Nothing of hoist's
//! loading, extraction or output code is used, so a bug there cannot hide
//! on both sides of a comparison.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use sha2::Digest as _;

/// One path of an image's final filesystem, as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `dir`, `file size=… sha256=…` (with ` hardlink-of=PATH` for a hard
    /// link in its layer), `symlink -> …`, `char …`, `fifo`.
    pub what: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// A file's content (kept for content checks).
    pub content: Option<Vec<u8>>,
}

impl Node {
    /// The one-line description the differential tests compare.
    pub fn line(&self) -> String {
        format!("{} mode={:o} owner={}:{}", self.what, self.mode, self.uid, self.gid)
    }
}

/// An image read from an archive.
#[derive(Debug)]
pub struct ArchivedImage {
    /// The image config.
    pub config: serde_json::Value,
    /// Path (relative, no leading `/`) → node, after every layer.
    pub tree: BTreeMap<String, Node>,
    /// The layer tars, uncompressed, bottom first.
    pub layers: Vec<Vec<u8>>,
}

/// Reads the image tagged `tag` (or the only image) from an archive.
pub fn read(archive: &Path, tag: Option<&str>) -> ArchivedImage {
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut reader = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = clean(&entry.path().unwrap().to_string_lossy());
        match entry.header().entry_type() {
            tar::EntryType::Regular => {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                files.insert(name, bytes);
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry.link_name().unwrap().unwrap().to_string_lossy().into_owned();
                let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    clean(&format!("{dir}/{target}"))
                } else {
                    clean(&target)
                };
                links.insert(name, target);
            }
            _ => {}
        }
    }
    let get = |name: &str| -> &Vec<u8> {
        let mut name = clean(name);
        for _ in 0..8 {
            match links.get(&name) {
                Some(target) => name = target.clone(),
                None => break,
            }
        }
        files.get(&name).unwrap_or_else(|| panic!("{name} is not in the archive"))
    };
    let manifests: Vec<serde_json::Value> = serde_json::from_slice(get("manifest.json")).unwrap();
    let manifest = match tag {
        None => &manifests[0],
        Some(tag) => manifests
            .iter()
            .find(|m| {
                m["RepoTags"].as_array().is_some_and(|tags| {
                    tags.iter().any(|t| {
                        t.as_str().is_some_and(|t| t == tag || t == format!("docker.io/library/{tag}"))
                    })
                })
            })
            .unwrap_or_else(|| panic!("no image tagged {tag} in the archive")),
    };
    let config: serde_json::Value =
        serde_json::from_slice(get(manifest["Config"].as_str().unwrap())).unwrap();
    let mut tree = BTreeMap::new();
    let mut layers = Vec::new();
    for layer in manifest["Layers"].as_array().unwrap() {
        let bytes = uncompressed(get(layer.as_str().unwrap()));
        apply(&mut tree, &bytes);
        layers.push(bytes);
    }
    ArchivedImage { config, tree, layers }
}

fn uncompressed(bytes: &[u8]) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        return out;
    }
    bytes.to_vec()
}

/// `./a//b/` → `a/b`.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Removes `path` and everything under it.
fn remove_tree(tree: &mut BTreeMap<String, Node>, path: &str) {
    tree.remove(path);
    let prefix = format!("{path}/");
    let under: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for key in under {
        tree.remove(&key);
    }
}

/// Applies one layer tar: whiteouts delete, opaque markers hide what lower
/// layers had in their directory, other entries replace.
pub fn apply(tree: &mut BTreeMap<String, Node>, layer: &[u8]) {
    let mut added: BTreeSet<String> = BTreeSet::new();
    let mut archive = tar::Archive::new(layer);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        if path.is_empty() {
            continue;
        }
        let name = path.rsplit('/').next().unwrap();
        if name == ".wh..wh..opq" {
            let dir = parent(&path).to_string();
            let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
            let hidden: Vec<String> = tree
                .keys()
                .filter(|k| k.starts_with(&prefix) && **k != dir && !added.contains(*k))
                .cloned()
                .collect();
            for key in hidden {
                tree.remove(&key);
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let dir = parent(&path);
            let target = if dir.is_empty() { hidden.to_string() } else { format!("{dir}/{hidden}") };
            remove_tree(tree, &target);
            continue;
        }
        let header = entry.header().clone();
        let mode = header.mode().unwrap() & 0o7777;
        let (uid, gid) = (header.uid().unwrap(), header.gid().unwrap());
        let node = match header.entry_type() {
            tar::EntryType::Directory => Node { what: "dir".into(), mode, uid, gid, content: None },
            tar::EntryType::Symlink => {
                let target = entry.link_name().unwrap().unwrap().to_string_lossy().into_owned();
                Node { what: format!("symlink -> {target}"), mode, uid, gid, content: None }
            }
            tar::EntryType::Link => {
                let target = clean(&entry.link_name().unwrap().unwrap().to_string_lossy());
                let mut linked =
                    tree.get(&target).cloned().unwrap_or_else(|| panic!("hard link to missing {target}"));
                linked.mode = mode;
                linked.what = format!("{} hardlink-of={target}", linked.what);
                linked
            }
            tar::EntryType::Char => {
                let rdev = (
                    header.device_major().unwrap().unwrap_or(0),
                    header.device_minor().unwrap().unwrap_or(0),
                );
                Node { what: format!("char {}:{}", rdev.0, rdev.1), mode, uid, gid, content: None }
            }
            tar::EntryType::Fifo => Node { what: "fifo".into(), mode, uid, gid, content: None },
            _ => {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                let digest = sha2::Sha256::digest(&bytes);
                Node {
                    what: format!("file size={} sha256={}", bytes.len(), hex::encode(&digest[..8])),
                    mode,
                    uid,
                    gid,
                    content: Some(bytes),
                }
            }
        };
        if node.what != "dir" || tree.get(&path).is_some_and(|n| n.what != "dir") {
            remove_tree(tree, &path);
        }
        tree.insert(path.clone(), node);
        added.insert(path);
    }
}
