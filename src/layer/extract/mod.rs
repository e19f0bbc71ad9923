//! Applying a layer tar to a directory: [`extract`] (the `layer` module says what it refuses).
//!
//! - Names and hardlink targets follow [`crate::paths::confined`].
//! - Owners follow [`Ownership`]; a remap translates through an
//!   [`IdMap`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dev, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

mod stream;

use stream::{Input, TarStream, read_meta};

use super::compression::Decoder;
use super::destination::{Destination, file_type_at, list_dir, open_dir, remove_all};
use super::write::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use super::{Compression, Digest, LayerError};
use crate::idmap::IdMap;
use crate::paths::{self, Unconfined};

/// How to treat the owners a layer records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Give every file the uid/gid the layer records (needs root or CAP_CHOWN).
    Preserve,
    /// Leave every file owned by the extracting user, for rootless extraction.
    Ignore,
    /// Translate recorded (container) ids to host ids as a user namespace
    /// with this map would; an id the map does not cover is an error.
    Remap(IdMap),
}

/// What to do when an extended attribute cannot be set (an unprivileged
/// user may not set `security.*` or `trusted.*`; some filesystems refuse all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrPolicy {
    /// Fail the extraction.
    Require,
    /// Skip it and record an [`ExtractWarning`].
    BestEffort,
    /// Do not even try.
    Ignore,
}

/// How [`extract`] checks and applies a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractOptions {
    /// The digest of the bytes read (compressed), checked at the end.
    pub expected_digest: Option<Digest>,
    /// The digest of the uncompressed tar, checked at the end.
    pub expected_diff_id: Option<Digest>,
    /// Fail once the uncompressed stream, or the file data written out,
    /// grows past this many bytes.
    pub max_uncompressed_bytes: Option<u64>,
    /// Whose files the extracted ones are.
    pub ownership: Ownership,
    /// What an extended attribute that cannot be set does.
    pub xattrs: XattrPolicy,
}

impl Default for ExtractOptions {
    /// No checks, no limit, best-effort xattrs; ownership preserved when
    /// running as root and ignored otherwise.
    fn default() -> ExtractOptions {
        ExtractOptions {
            expected_digest: None,
            expected_diff_id: None,
            max_uncompressed_bytes: None,
            ownership: if crate::idmap::rootless() { Ownership::Ignore } else { Ownership::Preserve },
            xattrs: XattrPolicy::BestEffort,
        }
    }
}

/// What an extraction read and what it had to leave out.
#[derive(Debug)]
pub struct ExtractStats {
    /// How the bytes read were compressed.
    pub compression: Compression,
    /// sha256 of the bytes read, as a manifest names the layer.
    pub digest: Digest,
    /// Bytes read (compressed).
    pub size: u64,
    /// sha256 of the uncompressed tar, as an image config names the layer.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Tar members applied, whiteouts included.
    pub entries: u64,
    /// What could not be applied as the layer asked.
    pub warnings: Vec<ExtractWarning>,
}

/// Something the layer asked for that this process was not allowed to do.
#[derive(Debug)]
pub enum ExtractWarning {
    /// A device node that only root (outside a user namespace) may create.
    DeviceSkipped {
        /// The member, as named in the layer.
        entry: PathBuf,
    },
    /// An extended attribute the filesystem or our privileges refused.
    XattrSkipped {
        /// The member, as named in the layer.
        entry: PathBuf,
        /// The attribute.
        name: OsString,
        /// Why it was refused.
        source: io::Error,
    },
}

impl fmt::Display for ExtractWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractWarning::DeviceSkipped { entry } => {
                write!(f, "skipped device node {entry:?}: creating devices needs root")
            }
            ExtractWarning::XattrSkipped { entry, name, source } => {
                write!(f, "skipped extended attribute {name:?} of {entry:?}: {source}")
            }
        }
    }
}

/// Extracts the layer read from `input` into the directory `dest`, on top
/// of whatever `dest` holds. See the module documentation for what is
/// refused. On error `dest` is left half-written and must be discarded.
pub fn extract<R: Read>(input: R, dest: &Path, options: &ExtractOptions) -> Result<ExtractStats, LayerError> {
    let destination = Destination::open(dest)?;
    let input = BufReader::with_capacity(1 << 16, Input::new(input));
    let decoder = Decoder::detect(input)?;
    let compression = decoder.compression();
    let mut archive = tar::Archive::new(TarStream::new(decoder, options.max_uncompressed_bytes));
    let mut extractor = Extractor::new(destination, options);
    let mut last_entry = None;
    let applied = extractor.apply_all(&mut archive, &mut last_entry);
    let mut tar = archive.into_inner();
    applied.map_err(|e| tar.explain(e))?;
    if tar.ended {
        // The stream stopped where a header or the end-of-archive blocks
        // should be: a cut at an entry boundary, not a complete layer.
        return Err(LayerError::Truncated { entry: last_entry });
    }
    // Read past the end-of-archive blocks: the diff_id and the digest cover
    // every byte, padding and compression trailers included.
    if let Err(source) = io::copy(&mut tar, &mut io::sink()) {
        return Err(tar.explain(LayerError::Corrupt { what: "tar archive", entry: last_entry, source }));
    }
    let diff_id = tar.inner.digest();
    let uncompressed_size = tar.inner.byte_count();
    let mut input = tar.inner.into_inner().into_inner().into_inner();
    io::copy(&mut input, &mut io::sink()).map_err(|source| LayerError::Input { source })?;
    let digest = input.inner.digest();
    let size = input.inner.byte_count();

    if let Some(expected) = options.expected_digest
        && expected != digest
    {
        return Err(LayerError::DigestMismatch { expected, actual: digest });
    }
    if let Some(expected) = options.expected_diff_id
        && expected != diff_id
    {
        return Err(LayerError::DiffIdMismatch { expected, actual: diff_id });
    }
    extractor.finish_dirs()?;
    Ok(ExtractStats {
        compression,
        digest,
        size,
        diff_id,
        uncompressed_size,
        entries: extractor.entries,
        warnings: extractor.warnings,
    })
}

/// Metadata of one tar member, as it will be applied.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timespec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

/// Where to apply metadata: an open file, or a name in a directory for
/// what cannot be opened (symlinks, devices, fifos).
enum Target<'a> {
    Fd(BorrowedFd<'a>),
    At { parent: BorrowedFd<'a>, name: &'a OsStr, path: &'a [u8] },
}

/// What a tar member is, decided before anything is written.
enum Member {
    File { sparse: bool },
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Node { file_type: FileType, major: u32, minor: u32 },
}

/// Where a member goes: its directory, its name there, its clean path from
/// the destination root, and its name as the tar spells it (for errors).
struct Place<'a> {
    parent: OwnedFd,
    base: &'a OsStr,
    path: &'a [u8],
    name: &'a Path,
}

impl Place<'_> {
    fn target(&self) -> Target<'_> {
        Target::At { parent: self.parent.as_fd(), name: self.base, path: self.path }
    }
}

struct Extractor<'o> {
    dest: Destination,
    options: &'o ExtractOptions,
    /// Every path this layer created, with its ancestors: whiteouts and
    /// opaque directories hide only what lower layers put there.
    touched: HashSet<Vec<u8>>,
    /// Directory mode and mtime, applied at the end: writing into a
    /// directory changes its mtime, and a read-only mode would stop us.
    dirs: BTreeMap<Vec<u8>, (u32, Timespec)>,
    entries: u64,
    file_bytes: u64,
    warnings: Vec<ExtractWarning>,
    buf: Vec<u8>,
}

impl<'o> Extractor<'o> {
    fn new(dest: Destination, options: &'o ExtractOptions) -> Extractor<'o> {
        Extractor {
            dest,
            options,
            touched: HashSet::new(),
            dirs: BTreeMap::new(),
            entries: 0,
            file_bytes: 0,
            warnings: Vec::new(),
            buf: vec![0; 1 << 16],
        }
    }

    fn apply_all<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        last_entry: &mut Option<PathBuf>,
    ) -> Result<(), LayerError> {
        let corrupt = |entry: &Option<PathBuf>, source| LayerError::Corrupt {
            what: "tar archive",
            entry: entry.clone(),
            source,
        };
        let entries = archive.entries().map_err(|e| corrupt(last_entry, e))?;
        for item in entries {
            let mut entry = item.map_err(|e| corrupt(last_entry, e))?;
            let name = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
            self.apply(&mut entry, &name)?;
            *last_entry = Some(name);
        }
        Ok(())
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, name: &Path) -> Result<(), LayerError> {
        let invalid =
            |reason: &str| LayerError::InvalidEntry { entry: name.to_owned(), reason: reason.to_owned() };
        let header = entry.header();
        let mut type_flag = header.entry_type();
        if type_flag.is_pax_global_extensions() {
            return Ok(());
        }
        let raw_path = entry.path_bytes();
        // Old (v7) tars mark directories only by a trailing slash.
        if header.as_bytes()[156] == 0 && raw_path.ends_with(b"/") {
            type_flag = tar::EntryType::Directory;
        }
        let path = match paths::confined(&raw_path) {
            Ok(path) => path,
            Err(Unconfined::Escapes | Unconfined::Absolute) => {
                return Err(LayerError::PathEscapes { entry: name.to_owned() });
            }
            Err(Unconfined::Nul) => return Err(invalid("the path contains a NUL byte")),
        };
        self.entries += 1;

        let (parent, base) = split_last(&path);
        if let Some(deleted) = base.strip_prefix(WHITEOUT_PREFIX) {
            return if base == OPAQUE_WHITEOUT {
                self.opaque(parent, name)
            } else if deleted.starts_with(WHITEOUT_PREFIX) {
                // AUFS bookkeeping (`.wh..wh.plnk`, …): not content; Docker skips it too.
                Ok(())
            } else {
                self.whiteout(parent, deleted, name)
            };
        }
        if path.is_empty() {
            // Docker leaves the root of the destination alone: its mode and
            // owner are the caller's to choose.
            return match type_flag {
                tar::EntryType::Directory => Ok(()),
                _ => Err(invalid("it would replace the destination directory itself")),
            };
        }

        // Decide what the member is before touching the filesystem.
        let member = match type_flag {
            tar::EntryType::Regular | tar::EntryType::Continuous => Member::File { sparse: false },
            tar::EntryType::GNUSparse => Member::File { sparse: true },
            tar::EntryType::Directory => Member::Dir,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| invalid("the link has no target"))?.into_owned();
                if type_flag == tar::EntryType::Symlink {
                    if target.contains(&0) {
                        return Err(invalid("the symlink target contains a NUL byte"));
                    }
                    Member::Symlink(target)
                } else {
                    Member::Hardlink(target)
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let header = entry.header();
                let device = |n: io::Result<Option<u32>>| {
                    n.map(Option::unwrap_or_default).map_err(|e| invalid(&format!("bad device number: {e}")))
                };
                Member::Node {
                    file_type: match type_flag {
                        tar::EntryType::Char => FileType::CharacterDevice,
                        tar::EntryType::Block => FileType::BlockDevice,
                        _ => FileType::Fifo,
                    },
                    major: device(header.device_major())?,
                    minor: device(header.device_minor())?,
                }
            }
            _ => {
                return Err(LayerError::UnsupportedEntryType {
                    entry: name.to_owned(),
                    type_flag: char::from(header.as_bytes()[156]),
                });
            }
        };
        let meta = read_meta(entry, name)?;
        self.touch(&path);
        let place = Place {
            parent: self.parent_dir(parent, name)?,
            base: OsStr::from_bytes(base),
            path: &path,
            name,
        };
        match member {
            Member::File { sparse } => self.file(entry, &place, &meta, sparse),
            Member::Dir => self.dir(&place, &meta),
            Member::Symlink(target) => self.symlink(&target, &place, &meta),
            Member::Hardlink(target) => self.hardlink(&target, &place),
            Member::Node { file_type, major, minor } => {
                self.node(&place, &meta, file_type, rustix::fs::makedev(major, minor))
            }
        }
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        place: &Place<'_>,
        meta: &Meta,
        sparse: bool,
    ) -> Result<(), LayerError> {
        let (name, path) = (place.name, place.path);
        self.make_room(place, false)?;
        let fd = rustix::fs::openat(
            &place.parent,
            place.base,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.dest.fs_error(path, e))?;
        let mut file = File::from(fd);
        let expected = entry.size();
        let mut copied = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(LayerError::Corrupt {
                        what: "tar archive",
                        entry: Some(name.to_owned()),
                        source,
                    });
                }
            };
            file.write_all(&self.buf[..n])
                .map_err(|source| LayerError::Filesystem { path: self.dest.host_path(path), source })?;
            copied += n as u64;
            self.file_bytes += n as u64;
            // Sparse entries expand on disk beyond what the stream holds.
            if let Some(limit) = self.options.max_uncompressed_bytes
                && self.file_bytes > limit
            {
                return Err(LayerError::TooLarge { limit, entry: Some(name.to_owned()) });
            }
        }
        if !sparse && copied != expected {
            return Err(LayerError::Truncated { entry: Some(name.to_owned()) });
        }
        let target = Target::Fd(file.as_fd());
        self.set_owner(&target, meta, name)?;
        self.set_mode(&target, meta, path)?;
        self.set_xattrs(&target, meta, name)?;
        self.set_mtime(&target, meta, path)
    }

    fn dir(&mut self, place: &Place<'_>, meta: &Meta) -> Result<(), LayerError> {
        if !self.make_room(place, true)? {
            rustix::fs::mkdirat(&place.parent, place.base, Mode::from_raw_mode(0o755))
                .map_err(|e| self.dest.fs_error(place.path, e))?;
        }
        let fd = open_dir(&place.parent, place.base).map_err(|e| self.dest.fs_error(place.path, e))?;
        let target = Target::Fd(fd.as_fd());
        self.set_owner(&target, meta, place.name)?;
        self.set_xattrs(&target, meta, place.name)?;
        self.dirs.insert(place.path.to_vec(), (meta.mode, meta.mtime));
        Ok(())
    }

    fn symlink(&mut self, target: &[u8], place: &Place<'_>, meta: &Meta) -> Result<(), LayerError> {
        self.make_room(place, false)?;
        rustix::fs::symlinkat(OsStr::from_bytes(target), &place.parent, place.base)
            .map_err(|e| self.dest.fs_error(place.path, e))?;
        let at = place.target();
        self.set_owner(&at, meta, place.name)?;
        self.set_xattrs(&at, meta, place.name)?;
        self.set_mtime(&at, meta, place.path)
    }

    fn hardlink(&mut self, target: &[u8], place: &Place<'_>) -> Result<(), LayerError> {
        let name = place.name;
        let target_name = PathBuf::from(OsStr::from_bytes(target));
        let missing =
            || LayerError::LinkTargetMissing { entry: name.to_owned(), target: target_name.clone() };
        let target = match paths::confined(target) {
            Ok(target) if !target.is_empty() => target,
            Ok(_) => return Err(missing()),
            Err(Unconfined::Escapes | Unconfined::Absolute) => {
                return Err(LayerError::LinkEscapes { entry: name.to_owned(), target: target_name.clone() });
            }
            Err(Unconfined::Nul) => {
                return Err(LayerError::InvalidEntry {
                    entry: name.to_owned(),
                    reason: "the hardlink target contains a NUL byte".into(),
                });
            }
        };
        if target == place.path {
            return Err(missing());
        }
        let (target_parent, target_base) = split_last(&target);
        let target_base = OsStr::from_bytes(target_base);
        let Some(target_dir) = self.dest.dir(target_parent, name, false)? else {
            return Err(missing());
        };
        match file_type_at(&target_dir, target_base).map_err(|e| self.dest.fs_error(&target, e))? {
            None => return Err(missing()),
            Some(FileType::Directory) => {
                return Err(LayerError::InvalidEntry {
                    entry: name.to_owned(),
                    reason: format!("it is a hardlink to the directory {target_name:?}"),
                });
            }
            Some(_) => {}
        }
        self.make_room(place, false)?;
        // Without AT_SYMLINK_FOLLOW a link to a symlink links the symlink
        // itself, never what it points at.
        rustix::fs::linkat(&target_dir, target_base, &place.parent, place.base, AtFlags::empty())
            .map_err(|e| self.dest.fs_error(place.path, e))
    }

    /// A device node or fifo.
    fn node(
        &mut self,
        place: &Place<'_>,
        meta: &Meta,
        file_type: FileType,
        dev: Dev,
    ) -> Result<(), LayerError> {
        self.make_room(place, false)?;
        match rustix::fs::mknodat(&place.parent, place.base, file_type, Mode::from_raw_mode(0o600), dev) {
            Ok(()) => {}
            Err(Errno::PERM) if file_type != FileType::Fifo => {
                self.warnings.push(ExtractWarning::DeviceSkipped { entry: place.name.to_owned() });
                return Ok(());
            }
            Err(e) => return Err(self.dest.fs_error(place.path, e)),
        }
        let at = place.target();
        self.set_owner(&at, meta, place.name)?;
        self.set_mode(&at, meta, place.path)?;
        self.set_xattrs(&at, meta, place.name)?;
        self.set_mtime(&at, meta, place.path)
    }

    /// Deletes `deleted` in `parent` if a lower layer put it there.
    fn whiteout(&mut self, parent: &[u8], deleted: &[u8], name: &Path) -> Result<(), LayerError> {
        if deleted.is_empty() || deleted == b"." || deleted == b".." {
            return Err(LayerError::InvalidEntry {
                entry: name.to_owned(),
                reason: "the whiteout does not name a file".into(),
            });
        }
        if self.touched.contains(&join(parent, deleted)) {
            return Ok(());
        }
        let Some(dir) = self.dest.dir(parent, name, false)? else {
            return Ok(());
        };
        remove_all(dir.as_fd(), OsStr::from_bytes(deleted))
            .map_err(|e| self.dest.fs_error(&join(parent, deleted), e))?;
        self.dest.forget_dirs();
        Ok(())
    }

    /// Empties `dir` of everything this layer did not put there, wherever in
    /// the tar the marker appears.
    fn opaque(&mut self, dir: &[u8], name: &Path) -> Result<(), LayerError> {
        self.touch(dir);
        self.parent_dir(dir, name)?;
        let mut pending = vec![dir.to_vec()];
        while let Some(current) = pending.pop() {
            let Some(fd) = self.dest.dir(&current, name, false)? else {
                continue;
            };
            let children = list_dir(&fd).map_err(|e| self.dest.fs_error(&current, e))?;
            for (child, file_type) in children {
                let child_path = join(&current, child.as_bytes());
                if !self.touched.contains(&child_path) {
                    remove_all(fd.as_fd(), &child).map_err(|e| self.dest.fs_error(&child_path, e))?;
                    self.dest.forget_dirs();
                    continue;
                }
                let is_dir = match file_type {
                    FileType::Directory => true,
                    FileType::Unknown => {
                        file_type_at(&fd, &child).map_err(|e| self.dest.fs_error(&child_path, e))?
                            == Some(FileType::Directory)
                    }
                    _ => false,
                };
                if is_dir {
                    pending.push(child_path);
                }
            }
        }
        Ok(())
    }

    /// Clears the way for a new member at `place`, as Docker's applyLayer
    /// does: whatever is there goes, unless both are directories, which
    /// merge. Returns whether an existing directory was kept.
    fn make_room(&mut self, place: &Place<'_>, for_dir: bool) -> Result<bool, LayerError> {
        let (parent, base) = (&place.parent, place.base);
        let fs_error = |e| self.dest.fs_error(place.path, e);
        match file_type_at(parent, base).map_err(fs_error)? {
            None => Ok(false),
            Some(FileType::Directory) if for_dir => Ok(true),
            Some(FileType::Directory) => {
                remove_all(parent.as_fd(), base).map_err(fs_error)?;
                self.dest.forget_dirs();
                Ok(false)
            }
            Some(_) => {
                rustix::fs::unlinkat(parent, base, AtFlags::empty()).map_err(fs_error)?;
                Ok(false)
            }
        }
    }

    /// The directory `dir`, created (with any missing ancestors) if need be.
    fn parent_dir(&mut self, dir: &[u8], name: &Path) -> Result<OwnedFd, LayerError> {
        match self.dest.dir(dir, name, true)? {
            Some(fd) => Ok(fd),
            None => Err(self.dest.fs_error(dir, Errno::NOENT)),
        }
    }

    fn touch(&mut self, path: &[u8]) {
        let mut end = path.len();
        // Ancestors of a touched path are always touched, so stop at the
        // first one already known.
        while end > 0 && self.touched.insert(path[..end].to_vec()) {
            end = path[..end].iter().rposition(|&b| b == b'/').unwrap_or(0);
        }
    }

    fn set_owner(&self, target: &Target<'_>, meta: &Meta, name: &Path) -> Result<(), LayerError> {
        let Some((uid, gid)) = self.owner(meta, name)? else {
            return Ok(());
        };
        let (uid, gid) = (Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)));
        match target {
            Target::Fd(fd) => rustix::fs::fchown(fd, uid, gid),
            Target::At { parent, name, .. } => {
                rustix::fs::chownat(parent, *name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
            }
        }
        .map_err(|e| LayerError::Ownership {
            entry: name.to_owned(),
            uid: meta.uid,
            gid: meta.gid,
            source: e.into(),
        })
    }

    /// The owner to give a file, or `None` to leave it to the extracting user.
    fn owner(&self, meta: &Meta, name: &Path) -> Result<Option<(u32, u32)>, LayerError> {
        let unmapped = |kind, id| LayerError::UnmappedId { entry: name.to_owned(), kind, id };
        // u32::MAX is chown's "leave unchanged", never a real owner.
        let plain = |kind, id: u64| {
            u32::try_from(id).ok().filter(|&id| id != u32::MAX).ok_or_else(|| unmapped(kind, id))
        };
        match &self.options.ownership {
            Ownership::Ignore => Ok(None),
            Ownership::Preserve => Ok(Some((plain("uid", meta.uid)?, plain("gid", meta.gid)?))),
            Ownership::Remap(map) => {
                let host = |host: Option<u64>, kind, id: u64| {
                    host.ok_or_else(|| unmapped(kind, id))
                        .and_then(|host| plain(kind, host).map_err(|_| unmapped(kind, id)))
                };
                let uid = host(map.host_uid(meta.uid), "uid", meta.uid)?;
                let gid = host(map.host_gid(meta.gid), "gid", meta.gid)?;
                Ok(Some((uid, gid)))
            }
        }
    }

    fn set_mode(&self, target: &Target<'_>, meta: &Meta, path: &[u8]) -> Result<(), LayerError> {
        let mode = Mode::from_raw_mode(meta.mode);
        match target {
            Target::Fd(fd) => rustix::fs::fchmod(fd, mode),
            // Only reached for nodes just made by mknodat, never a symlink.
            Target::At { parent, name, .. } => rustix::fs::chmodat(parent, *name, mode, AtFlags::empty()),
        }
        .map_err(|e| self.dest.fs_error(path, e))
    }

    fn set_xattrs(&mut self, target: &Target<'_>, meta: &Meta, name: &Path) -> Result<(), LayerError> {
        if self.options.xattrs == XattrPolicy::Ignore {
            return Ok(());
        }
        for (xattr, value) in &meta.xattrs {
            let result = match target {
                Target::Fd(fd) => rustix::fs::fsetxattr(fd, xattr, value, XattrFlags::empty()),
                // No *at form exists; every component of the path was just
                // walked without following symlinks, and lsetxattr does not
                // follow the last one.
                Target::At { path, .. } => {
                    rustix::fs::lsetxattr(self.dest.host_path(path), xattr, value, XattrFlags::empty())
                }
            };
            let Err(e) = result else { continue };
            match self.options.xattrs {
                XattrPolicy::Require => {
                    return Err(LayerError::Xattr {
                        entry: name.to_owned(),
                        name: xattr.clone(),
                        source: e.into(),
                    });
                }
                _ => self.warnings.push(ExtractWarning::XattrSkipped {
                    entry: name.to_owned(),
                    name: xattr.clone(),
                    source: e.into(),
                }),
            }
        }
        Ok(())
    }

    fn set_mtime(&self, target: &Target<'_>, meta: &Meta, path: &[u8]) -> Result<(), LayerError> {
        let times = Timestamps { last_access: meta.mtime, last_modification: meta.mtime };
        match target {
            Target::Fd(fd) => rustix::fs::futimens(fd, &times),
            Target::At { parent, name, .. } => {
                rustix::fs::utimensat(parent, *name, &times, AtFlags::SYMLINK_NOFOLLOW)
            }
        }
        .map_err(|e| self.dest.fs_error(path, e))
    }

    /// Gives directories their mode and mtime, deepest first so that a
    /// read-only parent does not stop us reaching its children.
    fn finish_dirs(&mut self) -> Result<(), LayerError> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by_key(|(path, _)| Reverse(path.iter().filter(|&&b| b == b'/').count()));
        for (path, (mode, mtime)) in dirs {
            let name = PathBuf::from(OsStr::from_bytes(&path));
            let fd = match self.dest.dir(&path, &name, false) {
                Ok(Some(fd)) => fd,
                // Replaced or deleted later in the layer: nothing to finish.
                Ok(None) | Err(LayerError::ThroughSymlink { .. }) | Err(LayerError::NotADirectory { .. }) => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let meta = Meta { mode, uid: 0, gid: 0, mtime, xattrs: Vec::new() };
            self.set_mode(&Target::Fd(fd.as_fd()), &meta, &path)?;
            self.set_mtime(&Target::Fd(fd.as_fd()), &meta, &path)?;
        }
        Ok(())
    }
}

/// The directory part and the last component of a clean path.
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (&[], path),
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() { name.to_vec() } else { [dir, b"/", name].concat() }
}

#[cfg(test)]
mod tests {
    use super::stream::parse_pax_time;
    use super::*;
    use crate::idmap::IdRange;

    #[test]
    fn pax_times_keep_fractions_and_sign() {
        let t = parse_pax_time(b"1700000000.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 250_000_000));
        let t = parse_pax_time(b"-1.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 500_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
    }

    #[test]
    fn pax_times_reject_garbage() {
        for bad in [&b""[..], b"x", b"1.x", b".5", b"--1"] {
            assert!(parse_pax_time(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn remap_translates_ids_and_refuses_unmapped_ones() {
        let options = ExtractOptions {
            ownership: Ownership::Remap(IdMap {
                uids: vec![IdRange { container_id: 0, host_id: 100_000, size: 65536 }],
                gids: vec![IdRange { container_id: 0, host_id: 200_000, size: 10 }],
            }),
            ..ExtractOptions::default()
        };
        let dest = tempfile::tempdir().unwrap();
        let extractor = Extractor::new(Destination::open(dest.path()).unwrap(), &options);
        let meta = |uid, gid| Meta {
            mode: 0,
            uid,
            gid,
            mtime: Timespec { tv_sec: 0, tv_nsec: 0 },
            xattrs: Vec::new(),
        };
        let name = Path::new("f");
        assert_eq!(extractor.owner(&meta(1000, 5), name).unwrap(), Some((101_000, 200_005)));
        assert!(matches!(
            extractor.owner(&meta(1000, 10), name),
            Err(LayerError::UnmappedId { kind: "gid", id: 10, .. })
        ));
    }
}
