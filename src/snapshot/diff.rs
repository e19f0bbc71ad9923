//! Changes to a working root, written as a layer.
//!
//! - Overlay: the upper dir is the change. A 0/0 character device is a
//!   whiteout, a directory marked opaque becomes its entry plus `.wh..wh..opq`,
//!   everything else is an entry as it is.
//! - Copy: each path is compared with what the copy recorded. New if nothing
//!   was recorded there; replaced if its inode (for a directory, inode
//!   generation) differs; changed if type, mode, owner, size, link target,
//!   device, xattrs or mtime (to the nanosecond) differ.
//! - Copy: a regular file whose metadata match but whose ctime moved has its
//!   bytes compared with the layer file it was copied from, which catches a
//!   rewrite that restored size and mtime (the copy waits for the clock to pass
//!   every recorded ctime, so a later change cannot keep the ctime).
//! - Copy: a replaced directory is opaque and all in it new; a recorded path
//!   that is gone is a whiteout unless its parent went or was replaced too.
//! - Parents of every change are included with their current metadata, as
//!   Docker does; both snapshotters thus give the same layer for the same change.
//! - Known difference: overlayfs without `index` copies up one name of a lower
//!   hardlink pair alone, while the copy snapshotter sees the shared inode
//!   change under every name (and writes them as a hardlink pair).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::lower::{RecordedState, dir_generation, is_opaque, is_whiteout, open_readable};
use super::{SnapshotError, io_error};
use crate::idmap::IdMap;
use crate::layer::{Compression, Entry, EntryKind, LayerSummary, LayerWriter};

/// Paths left out of a diff, with everything beneath them.
pub(super) struct Ignore(HashSet<PathBuf>);

impl Ignore {
    pub(super) fn new(paths: &[PathBuf]) -> Ignore {
        Ignore(
            paths
                .iter()
                .map(|p| p.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect())
                .collect(),
        )
    }

    fn covers(&self, rel: &Path) -> bool {
        !self.0.is_empty() && rel.ancestors().any(|a| self.0.contains(a))
    }
}

/// One entry of the diff, and where its bytes and inode are.
pub(super) struct Change {
    entry: Entry,
    /// For a non-directory with several names: its inode, so that later
    /// names become hardlinks.
    inode: Option<(u64, u64)>,
    fs_path: PathBuf,
}

impl Change {
    fn whiteout(rel: &Path, kind: EntryKind) -> Change {
        Change { entry: Entry::new(rel, kind), inode: None, fs_path: PathBuf::new() }
    }

    fn of(fs_path: PathBuf, rel: &Path, metadata: &fs::Metadata) -> Result<Option<Change>, SnapshotError> {
        let Some(entry) = Entry::from_fs(&fs_path, rel).map_err(SnapshotError::Diff)? else {
            return Ok(None);
        };
        let inode = (!metadata.is_dir() && metadata.nlink() > 1).then(|| (metadata.dev(), metadata.ino()));
        Ok(Some(Change { entry, inode, fs_path }))
    }

    /// The name the entry has in the tar, which orders the layer.
    fn sort_key(&self) -> Vec<u8> {
        let path = self.entry.path.as_os_str().as_bytes();
        match self.entry.kind {
            EntryKind::Dir => [path, b"/"].concat(),
            EntryKind::OpaqueWhiteout => [path, b"/.wh..wh..opq"].concat(),
            EntryKind::Whiteout => {
                let parent = self.entry.path.parent().map(|p| p.as_os_str().as_bytes()).unwrap_or_default();
                let base = self.entry.path.file_name().map(|b| b.as_bytes()).unwrap_or_default();
                if parent.is_empty() { [b".wh.", base].concat() } else { [parent, b"/.wh.", base].concat() }
            }
            _ => path.to_vec(),
        }
    }
}

/// Sorted children of a directory.
fn children(dir: &Path) -> Result<Vec<std::ffi::OsString>, SnapshotError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        names.push(entry.map_err(io_error(dir))?.file_name());
    }
    names.sort();
    Ok(names)
}

/// The changes an overlay upper dir holds.
pub(super) fn upper_changes(upper: &Path, ignore: &Ignore) -> Result<Vec<Change>, SnapshotError> {
    let mut changes = Vec::new();
    walk_upper(upper, Path::new(""), false, ignore, &mut changes)?;
    Ok(changes)
}

fn walk_upper(
    upper: &Path,
    rel: &Path,
    in_opaque: bool,
    ignore: &Ignore,
    changes: &mut Vec<Change>,
) -> Result<(), SnapshotError> {
    for name in children(&upper.join(rel))? {
        let child = rel.join(&name);
        if ignore.covers(&child) {
            continue;
        }
        let path = upper.join(&child);
        let metadata = fs::symlink_metadata(&path).map_err(io_error(&path))?;
        if is_whiteout(&metadata) {
            // Beneath an opaque directory there is nothing left to hide.
            if !in_opaque {
                changes.push(Change::whiteout(&child, EntryKind::Whiteout));
            }
            continue;
        }
        let Some(change) = Change::of(path.clone(), &child, &metadata)? else { continue };
        changes.push(change);
        if metadata.is_dir() {
            let opaque = is_opaque(&path);
            if opaque {
                changes.push(Change::whiteout(&child, EntryKind::OpaqueWhiteout));
            }
            walk_upper(upper, &child, in_opaque || opaque, ignore, changes)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unchanged,
    Changed,
    /// New, or under a replaced directory.
    New,
    /// Recorded, but a different file now: a directory becomes opaque.
    Replaced,
}

struct CopyWalk<'a> {
    root: &'a Path,
    state: &'a RecordedState,
    ignore: &'a Ignore,
    /// Every path present, with its state; directories keep their change.
    seen: HashMap<PathBuf, State>,
    dirs: BTreeMap<PathBuf, (PathBuf, fs::Metadata)>,
    changes: Vec<Change>,
}

/// The changes made to a copied root since it was recorded.
pub(super) fn copy_changes(
    root: &Path,
    state: &RecordedState,
    ignore: &Ignore,
) -> Result<Vec<Change>, SnapshotError> {
    let mut walk =
        CopyWalk { root, state, ignore, seen: HashMap::new(), dirs: BTreeMap::new(), changes: Vec::new() };
    walk.walk(Path::new(""), false)?;
    walk.hardlink_partners()?;

    // Deleted paths whose parent is still the directory it was.
    for rel in state.keys() {
        if walk.seen.contains_key(rel) || ignore.covers(rel) {
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let parent_kept = parent.as_os_str().is_empty()
            || matches!(walk.seen.get(parent), Some(State::Unchanged | State::Changed));
        if parent_kept {
            walk.changes.push(Change::whiteout(rel, EntryKind::Whiteout));
        }
    }

    // Parents of every change, as they are now.
    let mut included: HashSet<PathBuf> = walk.changes.iter().map(|c| c.entry.path.clone()).collect();
    let mut parents = Vec::new();
    for change in &walk.changes {
        for ancestor in change.entry.path.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() || !included.insert(ancestor.to_owned()) {
                continue;
            }
            parents.push(ancestor.to_owned());
        }
    }
    for rel in parents {
        let (path, metadata) = walk.dirs.get(&rel).cloned().ok_or_else(|| {
            io_error(root.join(&rel))(io::Error::other("the parent of a change is not a directory"))
        })?;
        if let Some(change) = Change::of(path, &rel, &metadata)? {
            walk.changes.push(change);
        }
    }
    Ok(walk.changes)
}

impl CopyWalk<'_> {
    fn walk(&mut self, rel: &Path, replaced_above: bool) -> Result<(), SnapshotError> {
        for name in children(&self.root.join(rel))? {
            let child = rel.join(&name);
            if self.ignore.covers(&child) {
                continue;
            }
            let path = self.root.join(&child);
            let metadata = fs::symlink_metadata(&path).map_err(io_error(&path))?;
            let Some(change) = Change::of(path.clone(), &child, &metadata)? else { continue };
            let state =
                if replaced_above { State::New } else { self.compare(&child, &change.entry, &metadata)? };
            self.seen.insert(child.clone(), state);
            let is_dir = metadata.is_dir();
            if is_dir {
                self.dirs.insert(child.clone(), (path, metadata));
            }
            if state != State::Unchanged {
                self.changes.push(change);
            }
            if is_dir {
                if state == State::Replaced {
                    self.changes.push(Change::whiteout(&child, EntryKind::OpaqueWhiteout));
                }
                self.walk(&child, matches!(state, State::New | State::Replaced))?;
            }
        }
        Ok(())
    }

    fn compare(&self, rel: &Path, entry: &Entry, metadata: &fs::Metadata) -> Result<State, SnapshotError> {
        let Some(recorded) = self.state.get(rel) else { return Ok(State::New) };
        let same_type = std::mem::discriminant(&recorded.entry.kind) == std::mem::discriminant(&entry.kind);
        if !same_type
            || recorded.ino != metadata.ino()
            || (metadata.is_dir() && recorded.generation != dir_generation(&self.root.join(rel)))
        {
            return Ok(State::Replaced);
        }
        let old = &recorded.entry;
        if old.kind != entry.kind
            || old.mode != entry.mode
            || old.uid != entry.uid
            || old.gid != entry.gid
            || old.mtime != entry.mtime
            || old.xattrs != entry.xattrs
            || recorded.mtime_nsec != metadata.mtime_nsec()
        {
            return Ok(State::Changed);
        }
        if metadata.is_file() && recorded.ctime != (metadata.ctime(), metadata.ctime_nsec()) {
            let path = self.root.join(rel);
            if !same_contents(&recorded.source, &path)? {
                return Ok(State::Changed);
            }
        }
        Ok(State::Unchanged)
    }

    /// A changed file that shares its inode with other recorded names
    /// (`ln base-file new-name`) takes those names along, so the layer
    /// holds the pair as a hardlink as overlayfs would copy both up.
    fn hardlink_partners(&mut self) -> Result<(), SnapshotError> {
        let mut by_inode: HashMap<u64, Vec<&PathBuf>> = HashMap::new();
        for (rel, recorded) in self.state {
            if recorded.nlink > 1 || matches!(recorded.entry.kind, EntryKind::File { .. }) {
                by_inode.entry(recorded.ino).or_default().push(rel);
            }
        }
        let linked: Vec<(u64, PathBuf)> =
            self.changes.iter().filter_map(|c| c.inode.map(|(_, ino)| (ino, c.entry.path.clone()))).collect();
        let mut present: HashSet<PathBuf> = self.changes.iter().map(|c| c.entry.path.clone()).collect();
        for (ino, _) in linked {
            for rel in by_inode.get(&ino).into_iter().flatten() {
                if present.contains(*rel) || self.ignore.covers(rel) {
                    continue;
                }
                let path = self.root.join(rel);
                let Ok(metadata) = fs::symlink_metadata(&path) else { continue };
                if metadata.ino() != ino {
                    continue;
                }
                if let Some(change) = Change::of(path, rel, &metadata)? {
                    present.insert((*rel).clone());
                    self.changes.push(change);
                }
            }
        }
        Ok(())
    }
}

fn same_contents(a: &Path, b: &Path) -> Result<bool, SnapshotError> {
    let mut fa = open_readable(a).map_err(io_error(a))?;
    let mut fb = open_readable(b).map_err(io_error(b))?;
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(io_error(a))?;
        let nb = read_full(&mut fb, &mut bb).map_err(io_error(b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes `changes` as a layer: sorted by tar name, later names of an
/// inode as hardlinks to the first, owners translated to container ids.
pub(super) fn write_layer(
    mut changes: Vec<Change>,
    out: impl Write,
    compression: Compression,
    id_map: Option<&IdMap>,
) -> Result<LayerSummary, SnapshotError> {
    let mut keyed: Vec<(Vec<u8>, Change)> = changes.drain(..).map(|c| (c.sort_key(), c)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.dedup_by(|a, b| a.0 == b.0);
    let mut layer = LayerWriter::new(out, compression).map_err(SnapshotError::Diff)?;
    let mut first_names: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for (_, mut change) in keyed {
        let entry = &mut change.entry;
        if let Some(map) = id_map
            && !matches!(entry.kind, EntryKind::Whiteout | EntryKind::OpaqueWhiteout)
        {
            entry.uid = map.container_uid(entry.uid);
            entry.gid = map.container_gid(entry.gid);
        }
        if let Some(inode) = change.inode {
            match first_names.get(&inode) {
                Some(first) => entry.kind = EntryKind::Hardlink { target: first.clone() },
                None => {
                    first_names.insert(inode, entry.path.clone());
                }
            }
        }
        if let EntryKind::File { .. } = entry.kind {
            let file = open_readable(&change.fs_path).map_err(io_error(&change.fs_path))?;
            layer.append(entry, file).map_err(SnapshotError::Diff)?;
        } else {
            layer.append(entry, io::empty()).map_err(SnapshotError::Diff)?;
        }
    }
    layer.finish().map_err(SnapshotError::Diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_covers_descendants_only() {
        let ignore = Ignore::new(&[PathBuf::from("/etc/hosts"), PathBuf::from("dev")]);
        assert!(ignore.covers(Path::new("etc/hosts")));
        assert!(ignore.covers(Path::new("dev/null")));
        assert!(!ignore.covers(Path::new("etc")));
        assert!(!ignore.covers(Path::new("etc/hostsx")));
    }

    #[test]
    fn whiteouts_sort_by_their_tar_name() {
        let change = Change::whiteout(Path::new("a/b"), EntryKind::Whiteout);
        assert_eq!(change.sort_key(), b"a/.wh.b");
    }
}
