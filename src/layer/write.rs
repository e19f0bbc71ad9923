//! Writing deterministic layer tars: [`LayerWriter`] and [`write_dir`].
//!
//! - Names follow [`crate::paths::descending`]: a written layer never needs
//!   `..`, so one is refused.

use std::collections::BTreeMap;
use std::collections::hash_map::{self, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::compression::Encoder;
use super::{Compression, Digest, DigestWriter, Entry, EntryKind, LayerError};
use crate::paths;

const BLOCK: usize = 512;
/// The largest values the ustar octal fields hold; larger ones go to PAX.
const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;
const NAME_FIELD: usize = 100;
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
pub(crate) const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";

/// What a finished layer is known by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSummary {
    /// How the tar was compressed on the way out.
    pub compression: Compression,
    /// sha256 of the uncompressed tar: the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// sha256 of the bytes written out: the manifest's layer digest.
    pub digest: Digest,
    /// Bytes written out (compressed).
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
}

impl LayerSummary {
    /// `diff_id digest size uncompressed_size`: how a helper process reports
    /// a layer it wrote to the process that stores it.
    pub fn to_line(&self) -> String {
        format!("{} {} {} {}", self.diff_id, self.digest, self.size, self.uncompressed_size)
    }

    /// The summary [`LayerSummary::to_line`] wrote, or `None`.
    pub fn from_line(line: &[u8], compression: Compression) -> Option<LayerSummary> {
        let line = std::str::from_utf8(line).ok()?;
        let mut fields = line.split(' ');
        let summary = LayerSummary {
            compression,
            diff_id: fields.next()?.parse().ok()?,
            digest: fields.next()?.parse().ok()?,
            size: fields.next()?.parse().ok()?,
            uncompressed_size: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(summary)
    }
}

/// Writes a layer: a deterministic tar stream, compressed, digested on the
/// way out. The same entries in the same order always give the same bytes.
///
/// After an error the layer is incomplete and must be discarded.
pub struct LayerWriter<W: Write> {
    tar: DigestWriter<Encoder<DigestWriter<BufWriter<W>>>>,
    compression: Compression,
    buf: Vec<u8>,
}

impl<W: Write> LayerWriter<W> {
    /// A layer written to `out` (buffered here; pass `&mut file` to keep
    /// the file for fsync and rename after [`LayerWriter::finish`]).
    pub fn new(out: W, compression: Compression) -> Result<LayerWriter<W>, LayerError> {
        let encoder = compression
            .compress(DigestWriter::new(BufWriter::with_capacity(1 << 16, out)))
            .map_err(|source| LayerError::Output { source })?;
        Ok(LayerWriter { tar: DigestWriter::new(encoder), compression, buf: vec![0; 1 << 16] })
    }

    /// Appends one entry. For a `File`, exactly `size` bytes are read from
    /// `contents` (fewer is an error); other kinds ignore `contents`
    /// (pass `io::empty()`).
    pub fn append(&mut self, entry: &Entry, contents: impl Read) -> Result<(), LayerError> {
        let headers = encode_headers(entry)?;
        self.write(&headers)?;
        if let EntryKind::File { size } = entry.kind {
            self.copy_contents(entry, size, contents)?;
        }
        Ok(())
    }

    /// Appends the tree under `root` (not `root` itself): entries sorted by
    /// their tar name bytes, so parents come first and the result does not
    /// depend on readdir order; a file with several names is stored once and
    /// its later names (in that order) become hardlinks to the first;
    /// symlinks are stored, never followed; sockets are skipped.
    pub fn append_tree(&mut self, root: &Path) -> Result<(), LayerError> {
        let fs_error = |path: &Path| {
            let path = path.to_owned();
            move |source| LayerError::Filesystem { path, source }
        };
        if !fs::metadata(root).map_err(fs_error(root))?.is_dir() {
            return Err(LayerError::Filesystem {
                path: root.to_owned(),
                source: io::Error::from(io::ErrorKind::NotADirectory),
            });
        }
        let mut nodes = Vec::new();
        let mut dirs = vec![PathBuf::new()];
        while let Some(dir) = dirs.pop() {
            let fs_dir = root.join(&dir);
            for child in fs::read_dir(&fs_dir).map_err(fs_error(&fs_dir))? {
                let child = child.map_err(fs_error(&fs_dir))?;
                let path = dir.join(child.file_name());
                let metadata = child.metadata().map_err(fs_error(&root.join(&path)))?;
                let mut key = path.as_os_str().as_bytes().to_vec();
                if metadata.is_dir() {
                    key.push(b'/');
                    dirs.push(path.clone());
                }
                nodes.push((key, path, metadata));
            }
        }
        nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        let mut first_names: HashMap<(u64, u64), PathBuf> = HashMap::new();
        for (_, path, metadata) in nodes {
            let fs_path = root.join(&path);
            let Some(mut entry) = Entry::from_metadata(&fs_path, path, &metadata)? else {
                continue;
            };
            if !metadata.is_dir() && metadata.nlink() > 1 {
                match first_names.entry((metadata.dev(), metadata.ino())) {
                    hash_map::Entry::Occupied(first) => {
                        entry.kind = EntryKind::Hardlink { target: first.get().clone() };
                    }
                    hash_map::Entry::Vacant(slot) => {
                        slot.insert(entry.path.clone());
                    }
                }
            }
            if let EntryKind::File { .. } = entry.kind {
                // O_NOFOLLOW: if the file was swapped for a symlink since the
                // walk, fail rather than store what the link points at.
                let fd = rustix::fs::open(
                    &fs_path,
                    rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| LayerError::Filesystem { path: fs_path.clone(), source: e.into() })?;
                self.append(&entry, File::from(fd))?;
            } else {
                self.append(&entry, io::empty())?;
            }
        }
        Ok(())
    }

    /// Ends the tar stream and the compression, flushes the output, and
    /// returns the layer's digests and sizes.
    pub fn finish(mut self) -> Result<LayerSummary, LayerError> {
        self.write(&[0; 2 * BLOCK])?;
        let diff_id = self.tar.digest();
        let uncompressed_size = self.tar.byte_count();
        let output = |source| LayerError::Output { source };
        let compressed = self.tar.into_inner().finish().map_err(output)?;
        let digest = compressed.digest();
        let size = compressed.byte_count();
        compressed.into_inner().into_inner().map_err(|e| output(e.into_error()))?.flush().map_err(output)?;
        Ok(LayerSummary { compression: self.compression, diff_id, digest, size, uncompressed_size })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), LayerError> {
        self.tar.write_all(bytes).map_err(|source| LayerError::Output { source })
    }

    fn copy_contents(&mut self, entry: &Entry, size: u64, contents: impl Read) -> Result<(), LayerError> {
        let mut contents = contents.take(size);
        let mut copied = 0u64;
        loop {
            let n = match contents.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(LayerError::Contents { entry: entry.path.clone(), source });
                }
            };
            self.tar.write_all(&self.buf[..n]).map_err(|source| LayerError::Output { source })?;
            copied += n as u64;
        }
        if copied != size {
            return Err(LayerError::Contents {
                entry: entry.path.clone(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the contents ended after {copied} of {size} bytes"),
                ),
            });
        }
        let padding = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.write(&[0; BLOCK][..padding])
    }
}

/// Writes the tree under `root` as a complete layer into `out`
/// (see [`LayerWriter::append_tree`]).
pub fn write_dir<W: Write>(
    root: &Path,
    out: W,
    compression: Compression,
) -> Result<LayerSummary, LayerError> {
    let mut layer = LayerWriter::new(out, compression)?;
    layer.append_tree(root)?;
    layer.finish()
}

/// The entry's header block, preceded by a PAX extended header when some
/// value does not fit ustar. Docker (Go's archive/tar) writes the same
/// shape: ustar, PAX for what overflows, xattrs as `SCHILY.xattr.*`.
fn encode_headers(entry: &Entry) -> Result<Vec<u8>, LayerError> {
    let invalid = |reason: String| LayerError::InvalidEntry { entry: entry.path.clone(), reason };
    let name = tar_name(entry).map_err(invalid)?;
    let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut header = tar::Header::new_ustar();

    let (type_flag, size, link) = match &entry.kind {
        EntryKind::Dir => (tar::EntryType::Directory, 0, None),
        EntryKind::File { size } => (tar::EntryType::Regular, *size, None),
        EntryKind::Whiteout | EntryKind::OpaqueWhiteout => (tar::EntryType::Regular, 0, None),
        EntryKind::Symlink { target } => {
            let target = target.as_os_str().as_bytes().to_vec();
            if target.contains(&0) {
                return Err(invalid("the symlink target contains a NUL byte".into()));
            }
            (tar::EntryType::Symlink, 0, Some(target))
        }
        EntryKind::Hardlink { target } => {
            let target = paths::descending(target.as_os_str().as_bytes())
                .ok_or_else(|| invalid("the hardlink target contains `..` or a NUL byte".into()))?;
            if target.is_empty() {
                return Err(invalid("the hardlink target is empty".into()));
            }
            (tar::EntryType::Link, 0, Some(target))
        }
        EntryKind::CharDevice { .. } => (tar::EntryType::Char, 0, None),
        EntryKind::BlockDevice { .. } => (tar::EntryType::Block, 0, None),
        EntryKind::Fifo => (tar::EntryType::Fifo, 0, None),
    };
    header.set_entry_type(type_flag);

    put_string(&mut header.as_old_mut().name, &name, b"path", &mut pax);
    if let Some(link) = &link {
        put_string(&mut header.as_old_mut().linkname, link, b"linkpath", &mut pax);
    }
    header.set_mode(entry.mode & 0o7777);
    header.set_uid(put_number(entry.uid, MAX_OCTAL_7, b"uid", &mut pax));
    header.set_gid(put_number(entry.gid, MAX_OCTAL_7, b"gid", &mut pax));
    header.set_size(put_number(size, MAX_OCTAL_11, b"size", &mut pax));
    match u64::try_from(entry.mtime) {
        Ok(mtime) => header.set_mtime(put_number(mtime, MAX_OCTAL_11, b"mtime", &mut pax)),
        Err(_) => {
            pax.insert(b"mtime".to_vec(), entry.mtime.to_string().into_bytes());
            header.set_mtime(0);
        }
    }
    // Always a ustar header: it was made by new_ustar.
    if let Some(ustar) = header.as_ustar_mut() {
        if let Some(uname) = &entry.uname {
            put_string(&mut ustar.uname, uname.as_bytes(), b"uname", &mut pax);
        }
        if let Some(gname) = &entry.gname {
            put_string(&mut ustar.gname, gname.as_bytes(), b"gname", &mut pax);
        }
    }
    let (major, minor) = match entry.kind {
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => (major, minor),
        _ => (0, 0),
    };
    if u64::from(major) > MAX_OCTAL_7 || u64::from(minor) > MAX_OCTAL_7 {
        return Err(invalid(format!("device number {major}:{minor} is too large for a tar header")));
    }
    header
        .set_device_major(major)
        .and_then(|()| header.set_device_minor(minor))
        .map_err(|e| invalid(e.to_string()))?;

    for (name, value) in &entry.xattrs {
        let name = name.as_bytes();
        if name.is_empty() || name.contains(&0) || name.contains(&b'=') {
            return Err(invalid(format!(
                "the extended attribute name {:?} cannot be stored in a tar",
                String::from_utf8_lossy(name)
            )));
        }
        pax.insert([b"SCHILY.xattr.", name].concat(), value.clone());
    }
    header.set_cksum();

    let mut out = Vec::with_capacity(BLOCK * 3);
    if !pax.is_empty() {
        let records: Vec<u8> = pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        let mut pax_header = tar::Header::new_ustar();
        pax_header.set_entry_type(tar::EntryType::XHeader);
        let pax_name = pax_header_name(&name);
        let field = &mut pax_header.as_old_mut().name;
        let len = pax_name.len().min(NAME_FIELD);
        field[..len].copy_from_slice(&pax_name[..len]);
        pax_header.set_mode(0);
        pax_header.set_uid(0);
        pax_header.set_gid(0);
        pax_header.set_mtime(0);
        pax_header.set_size(records.len() as u64);
        pax_header
            .set_device_major(0)
            .and_then(|()| pax_header.set_device_minor(0))
            .map_err(|e| invalid(e.to_string()))?;
        pax_header.set_cksum();
        out.extend_from_slice(pax_header.as_bytes());
        out.extend_from_slice(&records);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    out.extend_from_slice(header.as_bytes());
    Ok(out)
}

/// The name an entry has in the tar: relative, no `.` or empty components,
/// directories ending in `/` as Docker writes them, whiteouts spelled out.
fn tar_name(entry: &Entry) -> Result<Vec<u8>, String> {
    let path = paths::descending(entry.path.as_os_str().as_bytes())
        .ok_or_else(|| "the path contains `..` or a NUL byte".to_string())?;
    let (parent, base) = match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&path[..=slash], &path[slash + 1..]),
        None => (&b""[..], &path[..]),
    };
    Ok(match entry.kind {
        EntryKind::OpaqueWhiteout if path.is_empty() => OPAQUE_WHITEOUT.to_vec(),
        EntryKind::OpaqueWhiteout => [&path[..], b"/", OPAQUE_WHITEOUT].concat(),
        _ if path.is_empty() => return Err("the path is empty".into()),
        EntryKind::Whiteout => [parent, WHITEOUT_PREFIX, base].concat(),
        EntryKind::Dir => [&path[..], b"/"].concat(),
        _ => path,
    })
}

/// Puts `value` into a fixed-size header field, or, when it does not fit,
/// its first bytes there and all of it into the PAX record `key`.
fn put_string(field: &mut [u8], value: &[u8], key: &[u8], pax: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
    let len = value.len().min(field.len());
    field[..len].copy_from_slice(&value[..len]);
    if value.len() > field.len() {
        pax.insert(key.to_vec(), value.to_vec());
    }
}

/// The value for a numeric header field: `value` itself if it fits, else 0
/// with the real value in the PAX record `key`.
fn put_number(value: u64, max: u64, key: &[u8], pax: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> u64 {
    if value <= max {
        value
    } else {
        pax.insert(key.to_vec(), value.to_string().into_bytes());
        0
    }
}

/// One PAX record: `"<length> <key>=<value>\n"`, where length counts itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} ").into_bytes();
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// Go's name for a PAX header: `<dir>/PaxHeaders.0/<base>`. Readers ignore
/// it; a fixed one keeps the output deterministic.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(slash) => [&trimmed[..=slash], b"PaxHeaders.0/", &trimmed[slash + 1..]].concat(),
        None => [b"PaxHeaders.0/", trimmed].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        assert_eq!(pax_record(b"path", b"a"), b"9 path=a\n");
        // 98 bytes of body + 2 digits would be 100, which needs 3 digits.
        let value = vec![b'x'; 91];
        let record = pax_record(b"path", &value);
        assert!(record.starts_with(b"101 "));
        assert_eq!(record.len(), 101);
    }

    #[test]
    fn names_are_relative_without_dots_or_empty_components() {
        let file = EntryKind::File { size: 0 };
        assert_eq!(tar_name(&Entry::new("/./a//b/./c", file.clone())).unwrap(), b"a/b/c");
    }

    #[test]
    fn a_name_with_dot_dot_is_refused() {
        assert!(tar_name(&Entry::new("a/../b", EntryKind::File { size: 0 })).is_err());
    }

    #[test]
    fn directories_get_a_trailing_slash() {
        assert_eq!(tar_name(&Entry::new("/usr/bin", EntryKind::Dir)).unwrap(), b"usr/bin/");
    }

    #[test]
    fn whiteouts_are_named_after_what_they_delete() {
        assert_eq!(tar_name(&Entry::new("etc/motd", EntryKind::Whiteout)).unwrap(), b"etc/.wh.motd");
        assert_eq!(tar_name(&Entry::new("motd", EntryKind::Whiteout)).unwrap(), b".wh.motd");
        assert_eq!(
            tar_name(&Entry::new("var/cache", EntryKind::OpaqueWhiteout)).unwrap(),
            b"var/cache/.wh..wh..opq"
        );
    }

    #[test]
    fn pax_header_names_follow_go() {
        assert_eq!(pax_header_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name(b"dir/"), b"PaxHeaders.0/dir");
    }
}
