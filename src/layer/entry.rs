use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::LayerError;

/// What a layer entry is. Whiteouts are the OCI markers: `Whiteout` deletes
/// `path` from lower layers, `OpaqueWhiteout` hides everything lower layers
/// put in the directory `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Length of the contents, in bytes.
        size: u64,
    },
    /// A symbolic link.
    Symlink {
        /// What the link points at, stored as is: absolute or relative.
        target: PathBuf,
    },
    /// A second name for `target`, an earlier path in the same layer.
    Hardlink {
        /// The first name, relative to the layer root.
        target: PathBuf,
    },
    /// A character device node.
    CharDevice {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
    /// A block device node.
    BlockDevice {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// Deletes `path` from lower layers; written as `.wh.<name>`.
    Whiteout,
    /// Hides what lower layers put in the directory `path`; written as
    /// `<path>/.wh..wh..opq`.
    OpaqueWhiteout,
}

/// One member of a layer: a path relative to the layer root and its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where the member goes, relative to the layer root; for a whiteout,
    /// the path it deletes or hides.
    pub path: PathBuf,
    /// What the member is; the file type comes from here, not from `mode`.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky; bits outside
    /// `0o7777` are not written.
    pub mode: u32,
    /// Owning user id, as numbered inside the image.
    pub uid: u64,
    /// Owning group id, as numbered inside the image.
    pub gid: u64,
    /// Modification time in whole seconds since the Unix epoch, as Docker
    /// records it; may be negative.
    pub mtime: i64,
    /// Owning user name, written only when set so that layers do not depend
    /// on the build host's user database.
    pub uname: Option<String>,
    /// Owning group name, written only when set, like `uname`.
    pub gname: Option<String>,
    /// Extended attributes by name, written as PAX `SCHILY.xattr.*` records.
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
}

/// Extended attributes that describe the host rather than the image: an
/// SELinux label is assigned by the host's policy, and overlayfs keeps its
/// bookkeeping (opaque markers, redirects, origins) in `*.overlay.*`.
fn is_host_xattr(name: &[u8]) -> bool {
    name == b"security.selinux" || name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

impl Entry {
    /// An entry owned by root with mtime 0 and the usual mode for its kind:
    /// 0o755 for directories, 0o777 for symlinks, 0 for whiteouts (as Docker
    /// writes them) and 0o644 for everything else.
    pub fn new(path: impl Into<PathBuf>, kind: EntryKind) -> Entry {
        let mode = match kind {
            EntryKind::Dir => 0o755,
            EntryKind::Symlink { .. } => 0o777,
            EntryKind::Whiteout | EntryKind::OpaqueWhiteout => 0,
            _ => 0o644,
        };
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            uname: None,
            gname: None,
            xattrs: BTreeMap::new(),
        }
    }

    /// The entry describing the file at `fs_path` (never following a
    /// symlink), named `path` in the layer. Hardlinks are not detected here:
    /// every regular file comes back as `File`. Returns `None` for a socket,
    /// which a tar cannot hold. Extended attributes are read too, except
    /// `security.selinux` and overlayfs's own (`trusted.overlay.*`,
    /// `user.overlay.*`), which belong to the host, not the image.
    pub fn from_fs(fs_path: &Path, path: impl Into<PathBuf>) -> Result<Option<Entry>, LayerError> {
        let metadata = fs::symlink_metadata(fs_path)
            .map_err(|source| LayerError::Filesystem { path: fs_path.to_owned(), source })?;
        Entry::from_metadata(fs_path, path.into(), &metadata)
    }

    pub(crate) fn from_metadata(
        fs_path: &Path,
        path: PathBuf,
        metadata: &fs::Metadata,
    ) -> Result<Option<Entry>, LayerError> {
        let fs_error = |source| LayerError::Filesystem { path: fs_path.to_owned(), source };
        let file_type = metadata.file_type();
        let rdev = metadata.rdev() as rustix::fs::Dev;
        let device = || (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File { size: metadata.len() }
        } else if file_type.is_symlink() {
            EntryKind::Symlink { target: fs::read_link(fs_path).map_err(fs_error)? }
        } else if file_type.is_char_device() {
            let (major, minor) = device();
            EntryKind::CharDevice { major, minor }
        } else if file_type.is_block_device() {
            let (major, minor) = device();
            EntryKind::BlockDevice { major, minor }
        } else if file_type.is_fifo() {
            EntryKind::Fifo
        } else {
            return Ok(None);
        };
        let mut entry = Entry::new(path, kind);
        entry.mode = metadata.mode() & 0o7777;
        entry.uid = metadata.uid().into();
        entry.gid = metadata.gid().into();
        entry.mtime = metadata.mtime();
        entry.xattrs = read_xattrs(fs_path).map_err(fs_error)?;
        Ok(Some(entry))
    }
}

/// The image-relevant extended attributes of `path`, not following symlinks.
fn read_xattrs(path: &Path) -> io::Result<BTreeMap<OsString, Vec<u8>>> {
    let mut xattrs = BTreeMap::new();
    let names = match list_xattrs(path) {
        Ok(names) => names,
        // A filesystem without xattr support simply has none to keep.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok(xattrs);
        }
        Err(e) => return Err(e),
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if is_host_xattr(name) {
            continue;
        }
        let name = OsStr::from_bytes(name);
        match get_xattr(path, name)? {
            Some(value) => {
                xattrs.insert(name.to_owned(), value);
            }
            // Removed between listing and reading: it is not there to keep.
            None => continue,
        }
    }
    Ok(xattrs)
}

/// Calls a size-query-then-fill xattr syscall pair, retrying when the value
/// grows in between.
fn read_sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    fill: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    loop {
        let size = query()?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match fill(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn list_xattrs(path: &Path) -> io::Result<Vec<u8>> {
    Ok(read_sized(|| rustix::fs::llistxattr_query(path), |buf| rustix::fs::llistxattr(path, buf))?)
}

fn get_xattr(path: &Path, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    match read_sized(|| rustix::fs::lgetxattr_query(path, name), |buf| rustix::fs::lgetxattr(path, name, buf))
    {
        Ok(value) => Ok(Some(value)),
        Err(rustix::io::Errno::NODATA) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_entries_get_the_usual_mode_for_their_kind() {
        assert_eq!(Entry::new("d", EntryKind::Dir).mode, 0o755);
        assert_eq!(Entry::new("f", EntryKind::File { size: 0 }).mode, 0o644);
        assert_eq!(Entry::new("l", EntryKind::Symlink { target: "f".into() }).mode, 0o777);
        assert_eq!(Entry::new("w", EntryKind::Whiteout).mode, 0);
    }

    #[test]
    fn host_xattrs_are_not_image_content() {
        assert!(is_host_xattr(b"security.selinux"));
        assert!(is_host_xattr(b"trusted.overlay.opaque"));
        assert!(is_host_xattr(b"user.overlay.redirect"));
        assert!(!is_host_xattr(b"security.capability"));
        assert!(!is_host_xattr(b"user.mime_type"));
    }

    #[test]
    fn from_fs_skips_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(Entry::from_fs(&socket, "s").unwrap().is_none());
    }

    #[test]
    fn from_fs_reads_symlink_target_without_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("/nowhere", &link).unwrap();
        let entry = Entry::from_fs(&link, "l").unwrap().unwrap();
        assert_eq!(entry.kind, EntryKind::Symlink { target: "/nowhere".into() });
    }
}
