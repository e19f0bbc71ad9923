//! The merged view of a stack of layer dirs, as overlayfs shows it.
//!
//! - A name comes from the topmost layer holding it, a whiteout hides it, an
//!   opaque directory hides what lower layers hold beneath it.
//! - The copy snapshotter materialises that view (reflinks where it can);
//!   unpacking consults it for what a layer refers to but does not hold.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};

use crate::layer::Entry;

/// A 0/0 character device: overlayfs's whiteout.
pub(crate) fn is_whiteout(metadata: &Metadata) -> bool {
    metadata.file_type().is_char_device() && metadata.rdev() == 0
}

/// Whether `dir` carries an overlay opaque marker, of either namespace.
pub(crate) fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"].iter().any(|name| {
        let mut value = [0u8; 4];
        matches!(rustix::fs::lgetxattr(dir, *name, &mut value), Ok(1) if value[0] == b'y')
    })
}

/// Extended attributes that are the host's bookkeeping, not image content.
fn is_host_xattr(name: &[u8]) -> bool {
    name == b"security.selinux" || name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Finds `rel` in the merged view of `layers` (bottom first).
pub(crate) fn lookup(layers: &[PathBuf], rel: &Path) -> Option<(PathBuf, Metadata)> {
    let components: Vec<&OsStr> = rel.iter().collect();
    if components.is_empty() {
        return None;
    }
    for layer in layers.iter().rev() {
        let mut path = layer.clone();
        let mut hides_lower = false;
        for (i, component) in components.iter().enumerate() {
            path.push(component);
            let Ok(metadata) = fs::symlink_metadata(&path) else { break };
            if i + 1 == components.len() {
                return (!is_whiteout(&metadata)).then_some((path, metadata));
            }
            if !metadata.is_dir() {
                // A file, symlink or whiteout where a directory would be
                // hides every lower layer's version of what is beneath.
                return None;
            }
            hides_lower |= is_opaque(&path);
        }
        if hides_lower {
            return None;
        }
    }
    None
}

/// What a path of a copied root was right after the copy.
pub(crate) struct Recorded {
    pub entry: Entry,
    pub mtime_nsec: i64,
    pub ctime: (i64, i64),
    pub ino: u64,
    pub nlink: u64,
    /// The inode generation of directories (0 if the filesystem does not
    /// say): a directory deleted and recreated may get the same inode
    /// number back, never the same generation.
    pub generation: u32,
    /// The file in its layer dir it was copied from.
    pub source: PathBuf,
}

/// The state of a copied root at the time of the copy, by relative path.
pub(crate) type RecordedState = HashMap<PathBuf, Recorded>;

/// The generation of the directory at `path`, or 0.
pub(crate) fn dir_generation(path: &Path) -> u32 {
    let Ok(dir) = File::open(path) else { return 0 };
    // The ioctl number declares a long, filesystems write an int: a long
    // holds either, and the low bits are the generation.
    let mut generation: libc::c_long = 0;
    // SAFETY: FS_IOC_GETVERSION writes at most a long through the pointer,
    // which points at a live, writable long; rustix has no such call.
    let ok = unsafe { libc::ioctl(dir.as_raw_fd(), FS_IOC_GETVERSION, &mut generation) } == 0;
    if ok { generation as u32 } else { 0 }
}

const FS_IOC_GETVERSION: libc::c_ulong = 0x8008_7601;

/// Copies the merged view of `layers` (bottom first) into the empty
/// directory `dest` and records the state of every copy.
pub(crate) fn copy_merged(layers: &[PathBuf], dest: &Path) -> io::Result<RecordedState> {
    let mut copier = Copier { dest, state: HashMap::new(), links: HashMap::new(), dirs: Vec::new() };
    let sources: Vec<PathBuf> = layers.iter().rev().cloned().collect();
    copier.merge_dir(Path::new(""), &sources)?;
    // Directory times last, deepest first: filling a directory changes its mtime.
    for (rel, times) in copier.dirs.iter().rev() {
        let path = dest.join(rel);
        rustix::fs::utimensat(CWD, &path, times, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    let mut state = copier.state;
    for (rel, recorded) in state.iter_mut() {
        let path = dest.join(rel);
        let metadata = fs::symlink_metadata(&path)?;
        recorded.mtime_nsec = metadata.mtime_nsec();
        recorded.ctime = (metadata.ctime(), metadata.ctime_nsec());
        recorded.ino = metadata.ino();
        recorded.nlink = metadata.nlink();
        recorded.entry = Entry::from_fs(&path, rel.clone())
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::other(format!("{path:?} became a socket")))?;
        if metadata.is_dir() {
            recorded.generation = dir_generation(&path);
        }
    }
    Ok(state)
}

struct Copier<'a> {
    dest: &'a Path,
    state: RecordedState,
    /// First copy of each source inode, so hardlinks stay hardlinks.
    links: HashMap<(u64, u64), PathBuf>,
    dirs: Vec<(PathBuf, Timestamps)>,
}

impl Copier<'_> {
    /// Copies the directory `rel`, whose versions in the layers are
    /// `sources` (top first, already cut at an opaque one).
    fn merge_dir(&mut self, rel: &Path, sources: &[PathBuf]) -> io::Result<()> {
        let mut names: BTreeSet<OsString> = BTreeSet::new();
        for source in sources {
            for entry in fs::read_dir(source)? {
                names.insert(entry?.file_name());
            }
        }
        for name in names {
            let child = rel.join(&name);
            let mut top: Option<(PathBuf, Metadata, usize)> = None;
            for (i, source) in sources.iter().enumerate() {
                if let Ok(metadata) = fs::symlink_metadata(source.join(&name)) {
                    top = Some((source.join(&name), metadata, i));
                    break;
                }
            }
            let Some((path, metadata, i)) = top else { continue };
            if is_whiteout(&metadata) {
                continue;
            }
            self.copy_node(&path, &metadata, &child)?;
            if metadata.is_dir() {
                let mut child_sources = vec![path.clone()];
                if !is_opaque(&path) {
                    for lower in &sources[i + 1..] {
                        let lower_path = lower.join(&name);
                        match fs::symlink_metadata(&lower_path) {
                            Ok(m) if m.is_dir() => {
                                let opaque = is_opaque(&lower_path);
                                child_sources.push(lower_path);
                                if opaque {
                                    break;
                                }
                            }
                            // A file or whiteout below hides everything lower still.
                            Ok(_) => break,
                            Err(_) => {}
                        }
                    }
                }
                self.merge_dir(&child, &child_sources)?;
            }
        }
        Ok(())
    }

    fn copy_node(&mut self, source: &Path, metadata: &Metadata, rel: &Path) -> io::Result<()> {
        let dest = self.dest.join(rel);
        let file_type = metadata.file_type();
        let key = (metadata.dev(), metadata.ino());
        if !file_type.is_dir() && metadata.nlink() > 1 {
            if let Some(first) = self.links.get(&key) {
                fs::hard_link(self.dest.join(first), &dest)?;
                self.record(rel, source);
                return Ok(());
            }
            self.links.insert(key, rel.to_owned());
        }
        if file_type.is_dir() {
            fs::create_dir(&dest)?;
        } else if file_type.is_file() {
            copy_contents(source, &dest)?;
        } else if file_type.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(source)?, &dest)?;
        } else {
            let kind = if file_type.is_char_device() {
                FileType::CharacterDevice
            } else if file_type.is_block_device() {
                FileType::BlockDevice
            } else if file_type.is_fifo() {
                FileType::Fifo
            } else {
                // A socket: nothing a layer can hold.
                return Ok(());
            };
            match rustix::fs::mknodat(CWD, &dest, kind, Mode::from_raw_mode(0o600), metadata.rdev()) {
                Ok(()) => {}
                // Rootless: as extraction does, skip devices we may not make.
                Err(rustix::io::Errno::PERM) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        copy_metadata(source, metadata, &dest)?;
        let times = Timestamps {
            last_access: Timespec { tv_sec: metadata.atime(), tv_nsec: metadata.atime_nsec() },
            last_modification: Timespec { tv_sec: metadata.mtime(), tv_nsec: metadata.mtime_nsec() },
        };
        if file_type.is_dir() {
            self.dirs.push((rel.to_owned(), times));
        } else {
            rustix::fs::utimensat(CWD, &dest, &times, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        self.record(rel, source);
        Ok(())
    }

    fn record(&mut self, rel: &Path, source: &Path) {
        self.state.insert(
            rel.to_owned(),
            Recorded {
                entry: Entry::new(rel, crate::layer::EntryKind::Dir),
                mtime_nsec: 0,
                ctime: (0, 0),
                ino: 0,
                nlink: 0,
                generation: 0,
                source: source.to_owned(),
            },
        );
    }
}

/// Copies a regular file's bytes: a reflink where the filesystem shares
/// extents, else `copy_file_range` (which `io::copy` uses between files).
pub(crate) fn copy_contents(source: &Path, dest: &Path) -> io::Result<()> {
    let mut from = open_readable(source)?;
    let mut to = fs::OpenOptions::new().write(true).create_new(true).open(dest)?;
    if rustix::fs::ioctl_ficlone(&to, &from).is_ok() {
        return Ok(());
    }
    io::copy(&mut from, &mut to)?;
    Ok(())
}

/// Opens the regular file at `path` for reading, never following a
/// symlink. Unpacked rootless, a file the image keeps unreadable (mode
/// 000, like `/etc/shadow` in some images) belongs to us but cannot be
/// opened: its owner may lend itself read permission for the open.
pub(crate) fn open_readable(path: &Path) -> io::Result<File> {
    use rustix::fs::OFlags;
    let open = || rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty());
    match open() {
        Err(rustix::io::Errno::ACCESS) => {}
        other => return Ok(File::from(other?)),
    }
    let metadata = fs::symlink_metadata(path)?;
    if !metadata.is_file() || metadata.uid() != crate::idmap::effective_uid() {
        return Err(rustix::io::Errno::ACCESS.into());
    }
    let mode = metadata.mode() & 0o7777;
    rustix::fs::chmodat(CWD, path, Mode::from_raw_mode(mode | 0o400), AtFlags::empty())?;
    let opened = open();
    rustix::fs::chmodat(CWD, path, Mode::from_raw_mode(mode), AtFlags::empty())?;
    Ok(File::from(opened?))
}

/// Owner, mode and extended attributes of `source` onto `dest` (not its
/// times). Owner first: chown clears setuid bits and file capabilities.
pub(crate) fn copy_metadata(source: &Path, metadata: &Metadata, dest: &Path) -> io::Result<()> {
    let current = fs::symlink_metadata(dest)?;
    if (current.uid(), current.gid()) != (metadata.uid(), metadata.gid()) {
        rustix::fs::chownat(
            CWD,
            dest,
            Some(Uid::from_raw(metadata.uid())),
            Some(Gid::from_raw(metadata.gid())),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    if !metadata.file_type().is_symlink() {
        rustix::fs::chmodat(CWD, dest, Mode::from_raw_mode(metadata.mode() & 0o7777), AtFlags::empty())?;
    }
    copy_xattrs(source, dest)
}

fn copy_xattrs(source: &Path, dest: &Path) -> io::Result<()> {
    let names = match read_sized(|buf| rustix::fs::llistxattr(source, buf)) {
        Ok(names) => names,
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty() && !is_host_xattr(n)) {
        let name = OsStr::from_bytes(name);
        let value = match read_sized(|buf| rustix::fs::lgetxattr(source, name, buf)) {
            Ok(value) => value,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::lsetxattr(dest, name, &value, XattrFlags::empty()) {
            Ok(()) => {}
            // What extraction could not set either (rootless `trusted.*`,
            // `user.*` on a symlink) is not there to copy.
            Err(rustix::io::Errno::PERM | rustix::io::Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn read_sized(fill: impl Fn(&mut [u8]) -> rustix::io::Result<usize>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match fill(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}
