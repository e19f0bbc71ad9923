//! Context entries and the order they are kept in.

use std::cmp::Ordering;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::sync::OnceLock;

/// What a context entry is. Symlinks are recorded, never followed by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink {
        /// What the link points at, as stored: absolute or relative.
        target: PathBuf,
    },
    /// A device, fifo or socket: no content; the COPY executor decides what to do.
    Special {
        /// The device number (`st_rdev`) of a block or character device; 0
        /// for a fifo or socket.
        rdev: u64,
    },
}

/// One non-ignored file, directory, symlink or special file of the context,
/// with the stat fields the cache compares.
#[derive(Debug)]
pub struct ContextEntry {
    /// Relative to the context root, `/`-separated, no leading `./`; `""` is
    /// the root itself. Non-UTF-8 names are shown lossily here, while
    /// [`Context::absolute_path`](super::Context::absolute_path) keeps them exact.
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    /// `st_size`: a file's length in bytes; a symlink's is its target's length.
    pub size: u64,
    /// `st_uid`: the owner on the host.
    pub uid: u32,
    /// `st_gid`: the group on the host.
    pub gid: u32,
    /// Modification time, in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status change time, in nanoseconds since the Unix epoch.
    pub ctime_ns: i64,
    /// `st_ino`: the inode number.
    pub ino: u64,
    /// `st_dev`: the device of the filesystem holding the entry.
    pub dev: u64,
    pub(crate) fs_path: PathBuf,
    pub(crate) content: OnceLock<[u8; 32]>,
}

impl ContextEntry {
    pub(crate) fn from_metadata(
        path: String,
        fs_path: PathBuf,
        meta: &Metadata,
        target: Option<PathBuf>,
    ) -> Self {
        let file_type = meta.file_type();
        let kind = if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_symlink() {
            EntryKind::Symlink { target: target.unwrap_or_default() }
        } else {
            let device = file_type.is_block_device() || file_type.is_char_device();
            EntryKind::Special { rdev: if device { meta.rdev() } else { 0 } }
        };
        ContextEntry {
            path,
            kind,
            mode: meta.mode(),
            size: meta.size(),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            ino: meta.ino(),
            dev: meta.dev(),
            fs_path,
            content: OnceLock::new(),
        }
    }

    /// Whether the entry is a directory (a symlink to one is not).
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    /// The blake3 digest of a regular file's content, once known (from the
    /// stat cache or after [`Context::digest_of`](super::Context::digest_of)).
    pub fn content_digest(&self) -> Option<[u8; 32]> {
        self.content.get().copied()
    }

    /// The last path component (`""` for the root).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

/// Tree order: paths compared component by component, so a directory is
/// followed directly by everything inside it (`a`, `a/b`, `a.txt`).
pub(crate) fn tree_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// Whether `path` is `dir` or inside it (`dir == ""` is the root).
pub(crate) fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty() || path.strip_prefix(dir).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
