//! A read-only view of the filesystem a stack of unpacked layer dirs makes.
//!
//! - As overlayfs would show it, without mounting or copying: lookups go
//!   through the layers top first, honouring whiteouts (0/0 character devices)
//!   and opaque directories (`trusted.overlay.opaque` or `user.overlay.opaque`).
//! - Symlinks resolve inside the view; paths follow
//!   [`crate::paths::rooted_components`].
//! - COPY and ADD resolve their destination with it and read the image's
//!   /etc/passwd and /etc/group for `--chown`; `COPY --from` reads another
//!   stage's files through it.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::io;
use std::path::PathBuf;

use super::lower::{is_opaque, is_whiteout};
use crate::paths::rooted_components;

/// How many symlinks a lookup may follow before giving up (Linux: 40).
const MAX_SYMLINKS: usize = 40;

/// The merged filesystem of layer directories.
#[derive(Debug, Clone)]
pub struct MergedView {
    /// Top layer first.
    layers: Vec<PathBuf>,
}

/// A path found in the view: where it lives on disk and its metadata.
#[derive(Debug, Clone)]
pub struct Found {
    /// The path in the image, absolute, with symlinks resolved as asked.
    pub path: String,
    /// The file on the host: inside the topmost layer dir that has it.
    pub fs_path: PathBuf,
    /// `fs_path`'s metadata, not following a symlink.
    pub metadata: Metadata,
}

fn join(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

impl MergedView {
    /// A view of `layers`, given bottom first (the order of an image's
    /// `rootfs.diff_ids`).
    pub fn new(layers_bottom_first: &[PathBuf]) -> MergedView {
        MergedView { layers: layers_bottom_first.iter().rev().cloned().collect() }
    }

    /// The layer and metadata of exactly `parts`, following no symlink.
    fn lookup_exact(&self, parts: &[String]) -> io::Result<Option<(PathBuf, Metadata)>> {
        if parts.is_empty() {
            for layer in &self.layers {
                if let Ok(metadata) = fs::symlink_metadata(layer) {
                    return Ok(Some((layer.clone(), metadata)));
                }
            }
            return Ok(None);
        }
        for layer in &self.layers {
            let mut path = layer.clone();
            let mut hides_lower = false;
            for (i, part) in parts.iter().enumerate() {
                path.push(part);
                let metadata = match fs::symlink_metadata(&path) {
                    Ok(metadata) => metadata,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc_enotdir()) => break,
                    Err(e) => return Err(e),
                };
                if is_whiteout(&metadata) {
                    return Ok(None);
                }
                if i + 1 == parts.len() {
                    return Ok(Some((path, metadata)));
                }
                if !metadata.is_dir() {
                    // A file or symlink here hides whatever lower layers
                    // have below this name.
                    return Ok(None);
                }
                if is_opaque(&path) {
                    hides_lower = true;
                }
            }
            if hides_lower {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Looks `path` up, resolving symlinks in its directories (inside the
    /// view: an absolute target starts again at the root, `..` stops at
    /// it) and in its last component when `follow_last`.
    pub fn lookup(&self, path: &str, follow_last: bool) -> io::Result<Option<Found>> {
        let mut pending: Vec<String> = rooted_components(path);
        pending.reverse();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        loop {
            let Some(part) = pending.pop() else {
                let found = self.lookup_exact(&resolved)?;
                return Ok(found.map(|(fs_path, metadata)| Found {
                    path: join(&resolved),
                    fs_path,
                    metadata,
                }));
            };
            if part == ".." {
                resolved.pop();
                continue;
            }
            resolved.push(part);
            let Some((fs_path, metadata)) = self.lookup_exact(&resolved)? else { return Ok(None) };
            if metadata.file_type().is_symlink() && (follow_last || !pending.is_empty()) {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links at {}",
                        join(&resolved)
                    )));
                }
                let target = fs::read_link(&fs_path)?;
                let target = target.to_string_lossy().into_owned();
                resolved.pop();
                if target.starts_with('/') {
                    resolved.clear();
                }
                let mut parts: Vec<String> =
                    target.split('/').filter(|p| !p.is_empty() && *p != ".").map(str::to_string).collect();
                parts.reverse();
                pending.extend(parts);
            } else if !metadata.is_dir() && !pending.is_empty() {
                return Ok(None);
            }
        }
    }

    /// Resolves the directories of `path` (not its last component) and
    /// returns the path with them resolved: where a write to `path` lands.
    pub fn resolve_parent(&self, path: &str) -> io::Result<String> {
        let mut parts = rooted_components(path);
        let Some(last) = parts.pop() else { return Ok("/".to_string()) };
        let parent = match self.lookup(&join(&parts), true)? {
            Some(found) => found.path,
            None => join(&parts),
        };
        Ok(if parent == "/" { format!("/{last}") } else { format!("{parent}/{last}") })
    }

    /// The entries of directory `path` (already resolved), merged over the
    /// layers: name → (where on disk, metadata), sorted by name.
    pub fn read_dir(&self, path: &str) -> io::Result<BTreeMap<String, (PathBuf, Metadata)>> {
        let parts = rooted_components(path);
        let mut entries: BTreeMap<String, (PathBuf, Metadata)> = BTreeMap::new();
        let mut hidden: std::collections::BTreeSet<String> = Default::default();
        for layer in &self.layers {
            let mut dir = layer.clone();
            let mut visible = true;
            let mut hides_lower = false;
            for part in &parts {
                dir.push(part);
                match fs::symlink_metadata(&dir) {
                    Ok(m) if is_whiteout(&m) || !m.is_dir() => {
                        return Ok(entries);
                    }
                    Ok(_) => {
                        if is_opaque(&dir) {
                            hides_lower = true;
                        }
                    }
                    Err(_) => {
                        visible = false;
                        break;
                    }
                }
            }
            if parts.is_empty() && is_opaque(&dir) {
                hides_lower = true;
            }
            if visible {
                for child in fs::read_dir(&dir)? {
                    let child = child?;
                    let name = child.file_name().to_string_lossy().into_owned();
                    if entries.contains_key(&name) || hidden.contains(&name) {
                        continue;
                    }
                    let fs_path = child.path();
                    let metadata = fs::symlink_metadata(&fs_path)?;
                    if is_whiteout(&metadata) {
                        hidden.insert(name);
                    } else {
                        entries.insert(name, (fs_path, metadata));
                    }
                }
            }
            if hides_lower {
                break;
            }
        }
        Ok(entries)
    }

    /// The contents of the file at `path` (symlinks followed), if it is one.
    pub fn read_file(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match self.lookup(path, true)? {
            Some(found) if found.metadata.is_file() => fs::read(&found.fs_path).map(Some),
            _ => Ok(None),
        }
    }
}

fn libc_enotdir() -> i32 {
    rustix::io::Errno::NOTDIR.raw_os_error()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn layer(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
        for (path, content) in files {
            let full = dir.join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            if let Some(target) = content.strip_prefix("->") {
                std::os::unix::fs::symlink(target, &full).unwrap();
            } else if *content == "<dir>" {
                fs::create_dir_all(&full).unwrap();
            } else {
                fs::write(&full, content).unwrap();
            }
        }
        dir.to_path_buf()
    }

    #[test]
    fn upper_layer_wins_and_symlinked_directories_resolve_inside_the_view() {
        let tmp = tempfile::tempdir().unwrap();
        let low =
            layer(&tmp.path().join("0"), &[("etc/passwd", "low"), ("real/f", "x"), ("link", "->/real")]);
        let high = layer(&tmp.path().join("1"), &[("etc/passwd", "high")]);
        let view = MergedView::new(&[low, high]);
        assert_eq!(view.read_file("/etc/passwd").unwrap().unwrap(), b"high");
        let found = view.lookup("/link/f", true).unwrap().unwrap();
        assert_eq!(found.path, "/real/f");
        assert_eq!(view.resolve_parent("/link/new").unwrap(), "/real/new");
        assert_eq!(view.lookup("/link", false).unwrap().unwrap().path, "/link");
        let escaping = layer(&tmp.path().join("2"), &[("up", "->../../../real")]);
        let view = MergedView::new(&[tmp.path().join("0"), escaping]);
        assert_eq!(view.lookup("/up/f", true).unwrap().unwrap().path, "/real/f");
    }

    #[test]
    fn merged_directory_listing_skips_names_whited_out_above() {
        let tmp = tempfile::tempdir().unwrap();
        let low = layer(&tmp.path().join("0"), &[("d/a", "1"), ("d/b", "2")]);
        let high = tmp.path().join("1");
        fs::create_dir_all(high.join("d")).unwrap();
        fs::write(high.join("d/c"), "3").unwrap();
        let whiteout = rustix::fs::mknodat(
            rustix::fs::CWD,
            high.join("d/a"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        );
        if whiteout.is_err() {
            return; // not root: cannot make a whiteout device here
        }
        let view = MergedView::new(&[low, high]);
        let names: Vec<String> = view.read_dir("/d").unwrap().into_keys().collect();
        assert_eq!(names, ["b", "c"]);
        assert!(view.lookup("/d/a", true).unwrap().is_none());
    }
}
