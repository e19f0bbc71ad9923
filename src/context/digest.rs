//! Content digests: blake3 of each regular file, read in parallel and only
//! when neither this scan nor the stat cache already knows it; and the
//! digest of a selection, which is what a COPY/ADD cache key includes.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::entry::{ContextEntry, EntryKind};
use super::error::{ContextError, io_error};
use super::walk::absolute;

/// Files below this size are read in one call; larger ones are streamed.
const SMALL_FILE: u64 = 256 * 1024;

#[derive(Debug, Default)]
pub(crate) struct HashCounters {
    pub(crate) files: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// Fills in the content digest of every regular file among `entries` that
/// has none yet.
pub(crate) fn hash_missing(
    root: &Path,
    entries: &[&ContextEntry],
    counters: &HashCounters,
) -> Result<(), ContextError> {
    entries.par_iter().filter(|e| e.kind == EntryKind::File && e.content.get().is_none()).try_for_each(
        |entry| {
            let path = absolute(root, &entry.fs_path);
            let (digest, bytes) = hash_file(&path, entry.size).map_err(io_error(&path))?;
            counters.files.fetch_add(1, Ordering::Relaxed);
            counters.bytes.fetch_add(bytes, Ordering::Relaxed);
            let _ = entry.content.set(digest);
            Ok(())
        },
    )
}

fn hash_file(path: &Path, size_hint: u64) -> std::io::Result<([u8; 32], u64)> {
    let mut file = File::open(path)?;
    if size_hint < SMALL_FILE {
        let mut content = Vec::with_capacity(size_hint as usize + 1);
        file.read_to_end(&mut content)?;
        return Ok((*blake3::hash(&content).as_bytes(), content.len() as u64));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut file)?;
    Ok((*hasher.finalize().as_bytes(), hasher.count()))
}

/// Feeds one entry of a selection into a selection digest. Ownership and
/// times are left out on purpose: COPY sets ownership to 0:0 or --chown
/// (which the cache key carries itself) and the layer does not keep source
/// mtimes, so neither changes the result.
pub(crate) fn feed_entry(hasher: &mut blake3::Hasher, relative: &str, entry: &ContextEntry) {
    feed_bytes(hasher, relative.as_bytes());
    hasher.update(&entry.mode.to_le_bytes());
    match &entry.kind {
        EntryKind::File => {
            hasher.update(b"f");
            hasher.update(&entry.size.to_le_bytes());
            hasher.update(entry.content.get().expect("hashed before feeding"));
        }
        EntryKind::Dir => {
            hasher.update(b"d");
        }
        EntryKind::Symlink { target } => {
            hasher.update(b"l");
            feed_bytes(hasher, target.as_os_str().as_bytes());
        }
        EntryKind::Special { rdev } => {
            hasher.update(b"s");
            hasher.update(&rdev.to_le_bytes());
        }
    }
}

/// Length-prefixed, so no two sequences of strings feed the same bytes.
pub(crate) fn feed_bytes(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}
