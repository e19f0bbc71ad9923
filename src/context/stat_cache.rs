//! The persistent stat cache: for each regular file hashed before, the stat
//! fields seen then and its content digest, plus when that scan started.
//!
//! An entry is trusted only if every stat field is unchanged and the file's
//! mtime and ctime are older than the previous scan's start minus a margin.
//! Otherwise the file may have changed within the timestamp granularity
//! after it was hashed (git's "racily clean" problem: a rewrite in the same
//! tick, or `touch -r`, keeps the stat fields), so it is hashed again.
//!
//! Format (own, compact; the cache is private to hoist): magic, scan start
//! (i64 ns), entry count, then per entry the on-disk relative path and fixed
//! fields, all little-endian; a blake3 checksum of everything before it ends
//! the file. A cache that fails any check is ignored, never an error.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::entry::{ContextEntry, EntryKind};
use super::error::{ContextError, io_error};

const MAGIC: &[u8; 8] = b"HSTCTX01";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Stat {
    fn of(entry: &ContextEntry) -> Stat {
        Stat {
            size: entry.size,
            mtime_ns: entry.mtime_ns,
            ctime_ns: entry.ctime_ns,
            ino: entry.ino,
            dev: entry.dev,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
        }
    }
}

/// The decoded file: the bytes as read, and per entry where its path lies in
/// them, in the file's order — the walk's tree order, since the cache is
/// written from the walk's entries — so that matching is one merge pass,
/// with no allocation or hashing per file (the cache is read on every build,
/// a no-op rebuild included).
#[derive(Debug, Default)]
pub(crate) struct StatCache {
    scan_started_ns: i64,
    bytes: Vec<u8>,
    files: Vec<(std::ops::Range<usize>, Stat, [u8; 32])>,
}

/// Tree order on raw path bytes (`/` before every other byte), as the walk
/// orders its entries.
fn tree_order_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let key = |c: &u8| if *c == b'/' { 0 } else { *c };
    a.iter().map(key).cmp(b.iter().map(key))
}

impl StatCache {
    pub(crate) fn load(file: &Path) -> StatCache {
        fs::read(file).ok().and_then(decode).unwrap_or_default()
    }

    /// The trusted cached digest of each of `entries` (in tree order), or
    /// `None` where the cache cannot vouch for the file (see the module doc).
    pub(crate) fn trusted_digests(
        &self,
        entries: &[ContextEntry],
        racy_margin: Duration,
    ) -> Vec<Option<[u8; 32]>> {
        let horizon = self.scan_started_ns.saturating_sub(racy_margin.as_nanos() as i64);
        let mut cursor = 0;
        entries
            .iter()
            .map(|entry| {
                if entry.kind != EntryKind::File {
                    return None;
                }
                let key = entry.fs_path.as_os_str().as_bytes();
                while let Some((range, _, _)) = self.files.get(cursor) {
                    let cached = &self.bytes[range.clone()];
                    if cached == key {
                        break;
                    }
                    if tree_order_bytes(cached, key).is_gt() {
                        return None;
                    }
                    cursor += 1;
                }
                let (_, stat, digest) = self.files.get(cursor)?;
                let settled = entry.mtime_ns < horizon && entry.ctime_ns < horizon;
                (*stat == Stat::of(entry) && settled).then_some(*digest)
            })
            .collect()
    }
}

/// The cache file for the context at `root` inside `cache_dir`.
pub(crate) fn cache_file(cache_dir: &Path, root: &Path) -> PathBuf {
    let key = blake3::hash(root.as_os_str().as_bytes()).to_hex();
    cache_dir.join(format!("context-{}", &key[..32]))
}

/// Writes every regular file whose digest is known, atomically: a temp file
/// in the same directory, fsync, rename, fsync of the directory.
pub(crate) fn save(file: &Path, scan_started_ns: i64, entries: &[ContextEntry]) -> Result<(), ContextError> {
    let mut out = Vec::with_capacity(64 + entries.len() * 96);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&scan_started_ns.to_le_bytes());
    let known: Vec<(&ContextEntry, [u8; 32])> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| e.content_digest().map(|d| (e, d)))
        .collect();
    out.extend_from_slice(&(known.len() as u64).to_le_bytes());
    for (entry, digest) in known {
        let path = entry.fs_path.as_os_str().as_bytes();
        let stat = Stat::of(entry);
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        for word in [stat.size, stat.mtime_ns as u64, stat.ctime_ns as u64, stat.ino, stat.dev] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for word in [stat.mode, stat.uid, stat.gid] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&digest);
    }
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());

    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        fs::rename(&tmp, file)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ContextError::Io { path: file.to_path_buf(), source: e }
    })
}

fn decode(bytes: Vec<u8>) -> Option<StatCache> {
    let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != checksum {
        return None;
    }
    let mut r = Reader { rest: body, at: 0 };
    if r.take(8)? != MAGIC {
        return None;
    }
    let scan_started_ns = r.u64()? as i64;
    let count = r.u64()?;
    let mut files = Vec::with_capacity(count.min(1 << 24) as usize);
    for _ in 0..count {
        let len = r.u32()? as usize;
        let start = r.at;
        r.take(len)?;
        let path = start..start + len;
        let stat = Stat {
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
            ino: r.u64()?,
            dev: r.u64()?,
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
        };
        let digest: [u8; 32] = r.take(32)?.try_into().ok()?;
        files.push((path, stat, digest));
    }
    if !r.rest.is_empty() {
        return None;
    }
    Some(StatCache { scan_started_ns, bytes, files })
}

struct Reader<'a> {
    rest: &'a [u8],
    /// Offset of `rest` in the whole file.
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        self.at += n;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}
