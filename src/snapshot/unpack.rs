//! Unpacking one layer into its layer dir.
//!
//! - `layer::extract` applies whiteouts by deleting what lower layers hold,
//!   which an empty directory does not: so the layer is first read for its
//!   whiteouts, opaque markers, overlay xattrs and hardlinks into lower layers.
//! - Then it is extracted, the whiteouts become 0/0 character devices and the
//!   opaque directories get their xattr.
//! - Member names follow [`crate::paths::confined`], as extraction does.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufReader, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use super::lower::{self, copy_contents, copy_metadata};
use super::{LayerBlob, SnapshotError, Snapshots, io_error, opaque_xattr, working};
use crate::idmap::IdMap;
use crate::layer::{Decoder, Digest, ExtractOptions, LayerError, Ownership, XattrPolicy, extract};
use crate::paths;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";

/// Unpacks `layer` into `dir` unless it is there already; `lowers` are the
/// layer dirs beneath it, bottom first.
pub(super) fn unpack_layer(
    snapshots: &Snapshots,
    layer: &LayerBlob,
    chain_id: &Digest,
    dir: &Path,
    lowers: &[PathBuf],
) -> Result<(), SnapshotError> {
    if dir.is_dir() {
        return Ok(());
    }
    let _lock = snapshots.layer_lock(chain_id)?;
    if dir.is_dir() {
        return Ok(());
    }
    // Under the lock, a partial dir can only be left by a process that died.
    let partial = snapshots.dir.join("partial").join(chain_id.hex());
    let publish = |ownership: Ownership, opaque: &str| {
        working::remove_tree(&partial).map_err(io_error(&partial))?;
        fs::create_dir(&partial).map_err(io_error(&partial))?;
        fill(snapshots, layer, &partial, lowers, ownership, opaque)?;
        // One syncfs rather than an fsync per file: the rename below
        // must not become durable before the files it publishes.
        let dir_fd = fs::File::open(&partial).map_err(io_error(&partial))?;
        rustix::fs::syncfs(dir_fd.as_fd()).map_err(|e| io_error(&partial)(e.into()))?;
        fs::rename(&partial, dir).map_err(io_error(dir))
    };
    let filled = if !crate::idmap::rootless() {
        let ownership = match &snapshots.id_map {
            Some(map) => Ownership::Remap(map.clone()),
            None => Ownership::Preserve,
        };
        publish(ownership, opaque_xattr())
    } else if crate::sandbox::namespace_available() {
        // As the root of a user namespace with the sandbox's maps, files
        // get the owners the layer records (within the subordinate ids).
        let ownership = namespace_ownership();
        let unpack = |_: &mut dyn std::io::Write| {
            publish(ownership, ROOTLESS_OPAQUE).map_err(rootless_hint).map(|()| Vec::new())
        };
        super::as_namespace_root(unpack, |_| Ok(())).map(drop)
    } else {
        // No user namespace here: the files stay the caller's.
        publish(Ownership::Ignore, ROOTLESS_OPAQUE)
    };
    if filled.is_err() {
        let _ = working::remove_tree(&partial);
    }
    filled
}

/// An owner past the subordinate ids says where more come from.
fn rootless_hint(error: SnapshotError) -> SnapshotError {
    match error {
        SnapshotError::Unpack { source: source @ LayerError::UnmappedId { .. }, diff_id } => {
            SnapshotError::Helper(format!(
                "cannot unpack layer {diff_id}: {source}; rootless, files can have only the owners \
                 this user's ranges in /etc/subuid and /etc/subgid map"
            ))
        }
        other => other,
    }
}

/// The opaque marker a rootless (`userxattr`) overlay mount reads.
const ROOTLESS_OPAQUE: &str = "user.overlay.opaque";

/// Inside a user namespace with the sandbox's maps, a layer's ids are the
/// namespace's own: kept as they are wherever the maps reach (an id past
/// them fails the unpack). With only the caller's own id mapped, every file
/// is the caller's, as the container's root. Call it before entering the
/// namespace: inside, the caller is root and has no subordinate ids.
pub fn namespace_ownership() -> Ownership {
    let map = IdMap::rootless();
    if map.maps_only_root() {
        return Ownership::Ignore;
    }
    Ownership::Remap(map.as_seen_inside())
}

fn fill(
    snapshots: &Snapshots,
    layer: &LayerBlob,
    dest: &Path,
    lowers: &[PathBuf],
    ownership: Ownership,
    opaque: &str,
) -> Result<(), SnapshotError> {
    let unpack_error = |source| SnapshotError::Unpack { diff_id: layer.diff_id, source };
    let blob = snapshots.store.open_blob(&layer.digest)?;
    let marks = Marks::scan(blob).map_err(unpack_error)?;
    for target in &marks.links_below {
        bring_up(dest, lowers, target)?;
    }
    let options = ExtractOptions {
        expected_digest: Some(layer.digest),
        expected_diff_id: Some(layer.diff_id),
        max_uncompressed_bytes: None,
        ownership,
        xattrs: XattrPolicy::BestEffort,
    };
    let blob = snapshots.store.open_blob(&layer.digest)?;
    extract(blob, dest, &options).map_err(unpack_error)?;

    for (path, name) in &marks.overlay_xattrs {
        // A layer may not make itself opaque or redirect overlayfs.
        if directories_lead_to(dest, path) {
            let _ = rustix::fs::lremovexattr(dest.join(path), name.as_os_str());
        }
    }
    for path in &marks.whiteouts {
        mark_whiteout(dest, lowers, path)?;
    }
    for path in &marks.opaque_dirs {
        let dir = dest.join(path);
        match fs::symlink_metadata(&dir) {
            Ok(metadata) if metadata.is_dir() && directories_lead_to(dest, path) => {
                rustix::fs::lsetxattr(&dir, opaque, b"y", XattrFlags::empty())
                    .map_err(|e| io_error(&dir)(e.into()))?;
            }
            // Replaced by a non-directory later in the same layer.
            _ => {}
        }
    }
    Ok(())
}

/// What a layer holds that the extracted tree will not show.
#[derive(Default)]
struct Marks {
    whiteouts: Vec<PathBuf>,
    opaque_dirs: Vec<PathBuf>,
    overlay_xattrs: Vec<(PathBuf, std::ffi::OsString)>,
    /// Hardlink targets the layer does not hold itself.
    links_below: Vec<PathBuf>,
}

impl Marks {
    fn scan(blob: impl Read) -> Result<Marks, LayerError> {
        let corrupt = |source| LayerError::Corrupt { what: "tar archive", entry: None, source };
        let decoder = Decoder::detect(BufReader::with_capacity(1 << 16, blob))?;
        let mut archive = tar::Archive::new(decoder);
        let mut marks = Marks::default();
        let mut seen: HashSet<PathBuf> = HashSet::new();
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            // An unclean name fails the extraction that follows; skip it here.
            let Some(path) = member_path(&entry.path_bytes()) else { continue };
            let base = path.file_name().map(|b| b.as_bytes()).unwrap_or_default();
            if let Some(deleted) = base.strip_prefix(WHITEOUT_PREFIX) {
                let parent = path.parent().unwrap_or(Path::new("")).to_owned();
                if base == OPAQUE_WHITEOUT {
                    marks.opaque_dirs.push(parent);
                } else if !deleted.starts_with(WHITEOUT_PREFIX) && !deleted.is_empty() {
                    marks.whiteouts.push(parent.join(OsStr::from_bytes(deleted)));
                }
                continue;
            }
            if entry.header().entry_type().is_hard_link()
                && let Some(target) = entry.link_name_bytes().and_then(|t| member_path(&t))
                && !seen.contains(&target)
            {
                marks.links_below.push(target);
            }
            if let Some(extensions) = entry.pax_extensions().map_err(corrupt)? {
                for extension in extensions.flatten() {
                    let key = extension.key_bytes();
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.")
                        && (name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
                    {
                        marks.overlay_xattrs.push((path.clone(), OsStr::from_bytes(name).to_owned()));
                    }
                }
            }
            seen.insert(path);
        }
        Ok(marks)
    }
}

/// Whether every directory on the way from `dest` to `rel` is one, not a
/// symlink: a later member may have replaced a directory by a symlink
/// pointing out, and what this module writes after extraction (xattrs)
/// must not follow it.
fn directories_lead_to(dest: &Path, rel: &Path) -> bool {
    let mut path = dest.to_owned();
    let Some(parent) = rel.parent() else { return true };
    parent.iter().all(|component| {
        path.push(component);
        fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
    })
}

/// Where a member named `name` lands in the layer dir ([`paths::confined`]),
/// or `None` for the root itself or a name extraction refuses.
fn member_path(name: &[u8]) -> Option<PathBuf> {
    let path = paths::confined(name).ok().filter(|path| !path.is_empty())?;
    Some(PathBuf::from(OsStr::from_bytes(&path)))
}

/// Puts a 0/0 character device at `rel` unless the layer itself holds
/// something there (a whiteout hides only what lower layers hold).
fn mark_whiteout(dest: &Path, lowers: &[PathBuf], rel: &Path) -> Result<(), SnapshotError> {
    let path = dest.join(rel);
    if fs::symlink_metadata(&path).is_ok() {
        return Ok(());
    }
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    if !ensure_dirs(dest, lowers, parent_rel)? {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(dest).to_owned();
    // Making the device changes the parent's mtime, which is content.
    let parent_times = fs::symlink_metadata(&parent).map_err(io_error(&parent))?;
    rustix::fs::mknodat(CWD, &path, FileType::CharacterDevice, Mode::empty(), 0)
        .map_err(|e| io_error(&path)(e.into()))?;
    set_times(&parent, &parent_times)
}

fn set_times(path: &Path, metadata: &fs::Metadata) -> Result<(), SnapshotError> {
    let times = Timestamps {
        last_access: Timespec { tv_sec: metadata.atime(), tv_nsec: metadata.atime_nsec() },
        last_modification: Timespec { tv_sec: metadata.mtime(), tv_nsec: metadata.mtime_nsec() },
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io_error(path)(e.into()))
}

/// Makes the directories leading to `rel` in `dest`, with the metadata the
/// lower layers give them (an upper directory's metadata is what a merged
/// view shows). Returns false if something that is not a directory is in
/// the way: the whiteout then has nothing to hide.
fn ensure_dirs(dest: &Path, lowers: &[PathBuf], rel: &Path) -> Result<bool, SnapshotError> {
    let mut current = PathBuf::new();
    let mut made: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    for component in rel.iter() {
        current.push(component);
        let path = dest.join(&current);
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => continue,
            Ok(_) => return Ok(false),
            Err(_) => {}
        }
        let Some((source, metadata)) = lower::lookup(lowers, &current).filter(|(_, m)| m.is_dir()) else {
            return Ok(false);
        };
        let parent = path.parent().unwrap_or(dest).to_owned();
        let parent_times = fs::symlink_metadata(&parent).map_err(io_error(&parent))?;
        fs::create_dir(&path).map_err(io_error(&path))?;
        copy_metadata(&source, &metadata, &path).map_err(io_error(&path))?;
        set_times(&parent, &parent_times)?;
        made.push((path, metadata));
    }
    for (path, metadata) in made.iter().rev() {
        set_times(path, metadata)?;
    }
    Ok(true)
}

/// Copies the file `rel` from the lower layers into `dest`, for a hardlink
/// in this layer that points at it.
fn bring_up(dest: &Path, lowers: &[PathBuf], rel: &Path) -> Result<(), SnapshotError> {
    let Some((source, metadata)) = lower::lookup(lowers, rel) else {
        // Extraction reports the missing target.
        return Ok(());
    };
    let parent = rel.parent().unwrap_or(Path::new(""));
    if metadata.is_dir() || !ensure_dirs(dest, lowers, parent)? {
        return Ok(());
    }
    let path = dest.join(rel);
    let copied = if metadata.is_file() {
        copy_contents(&source, &path)
    } else if metadata.file_type().is_symlink() {
        fs::read_link(&source).and_then(|target| std::os::unix::fs::symlink(target, &path))
    } else {
        return Ok(());
    };
    copied.map_err(io_error(&path))?;
    copy_metadata(&source, &metadata, &path).map_err(io_error(&path))?;
    set_times(&path, &metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_lands_at_its_confined_name() {
        assert_eq!(member_path(b"/a/./b/"), Some(PathBuf::from("a/b")));
    }

    #[test]
    fn an_escaping_member_or_the_root_itself_has_no_place() {
        assert_eq!(member_path(b"a/../../b"), None);
        assert_eq!(member_path(b"./"), None);
    }

    #[test]
    fn a_symlink_on_the_way_is_not_a_directory() {
        let dest = tempfile::tempdir().unwrap();
        fs::create_dir(dest.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("/etc", dest.path().join("link")).unwrap();
        assert!(directories_lead_to(dest.path(), Path::new("dir/x")));
        assert!(!directories_lead_to(dest.path(), Path::new("link/passwd")));
        assert!(directories_lead_to(dest.path(), Path::new("top")));
    }

    #[test]
    fn bring_up_leaves_a_missing_target_to_extraction() {
        let dest = tempfile::tempdir().unwrap();
        assert!(bring_up(dest.path(), &[], Path::new("missing")).is_ok());
    }
}
