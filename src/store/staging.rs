//! Staging: bytes from outside (an imported rootfs, an entry of a loaded archive) on their way in.
//!
//! - [`Store::stage`]: one pass to a temp file in `tmp/` that decompresses
//!   the bytes if they are compressed, computes the sha256 of the bytes as
//!   given and of the content, checks them as a layer tar, and refuses
//!   decompression bombs.
//! - [`StagedBlob`]: the staged file; nothing reaches `blobs/` until
//!   [`StagedBlob::commit`], so a failed import or load leaves the store as
//!   it was.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;

use super::{Result, Store, StoreError, io_error, sync_dir};
use crate::layer::check::{TarCheck, TarProblem, TarSummary};
use crate::layer::{Compression, Digest, DigestReader, DigestWriter};

/// Content that decompresses to more than this many times its compressed
/// size, and to more than [`BOMB_FLOOR`] bytes, is refused as a
/// decompression bomb.
const BOMB_RATIO: u64 = 1000;
const BOMB_FLOOR: u64 = 1 << 30;

/// A file in `tmp/`, removed on drop unless committed.
#[derive(Debug)]
pub struct StagedBlob {
    store: Store,
    path: Option<PathBuf>,
    /// The sha256 of the bytes as they came (compressed or not).
    pub raw_digest: Digest,
    /// The number of bytes as they came.
    pub raw_size: u64,
    /// The sha256 of the content (decompressed): a layer's diffID. The
    /// blob is committed under this digest.
    pub digest: Digest,
    /// The content's size in bytes.
    pub size: u64,
    /// How the bytes came compressed; `Compression::None` when plain.
    pub compression: Compression,
    /// The content read as a layer tar: entries, or what is wrong with it.
    pub tar: Result<TarSummary, TarProblem>,
}

impl StagedBlob {
    /// Reads the content back (for small JSON files).
    pub fn read_to_vec(&self, limit: u64) -> Result<Vec<u8>> {
        let path = self.path.as_ref().expect("staged file present until commit");
        if self.size > limit {
            return Err(StoreError::Invalid {
                what: path.display().to_string(),
                reason: format!("{} bytes is more than the {limit} allowed for a JSON document", self.size),
            });
        }
        fs::read(path).map_err(io_error(path))
    }

    /// Moves the content into `blobs/` under its digest.
    pub fn commit(mut self) -> Result<Digest> {
        let path = self.path.take().expect("staged file present until commit");
        let target = self.store.blob_path(&self.digest);
        if target.exists() {
            fs::remove_file(&path).map_err(io_error(&path))?;
        } else {
            fs::rename(&path, &target).map_err(io_error(&target))?;
            sync_dir(target.parent().expect("blob directory"))?;
        }
        Ok(self.digest)
    }

    /// Like `commit`, but keeps the staged file for another commit of the
    /// same content (an archive may list one layer for several images).
    pub fn commit_copy(&self) -> Result<Digest> {
        let path = self.path.as_ref().expect("staged file present until commit");
        let target = self.store.blob_path(&self.digest);
        if !target.exists() {
            let (temp, _) = self.store.temp_file("copy")?;
            fs::copy(path, &temp).map_err(io_error(&temp))?;
            File::open(&temp).and_then(|f| f.sync_all()).map_err(io_error(&temp))?;
            fs::rename(&temp, &target).map_err(io_error(&target))?;
            sync_dir(target.parent().expect("blob directory"))?;
        }
        Ok(self.digest)
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_file(path);
        }
    }
}

/// Passes writes to a file and to a tar check.
struct Tee<'a> {
    file: DigestWriter<File>,
    check: &'a mut TarCheck,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if self.check.problem().is_none() {
            self.check.write_all(&buf[..n])?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Store {
    /// Stages everything `input` yields; see the module docs.
    pub fn stage(&self, input: impl Read) -> Result<StagedBlob> {
        let (path, file) = self.temp_file("stage")?;
        // The path is owned by the StagedBlob from here, so errors clean up.
        let mut staged = StagedBlob {
            store: self.clone(),
            path: Some(path.clone()),
            raw_digest: Digest::sha256(b""),
            raw_size: 0,
            digest: Digest::sha256(b""),
            size: 0,
            compression: Compression::None,
            tar: Ok(TarSummary::default()),
        };
        let consumed = Rc::new(Cell::new(0u64));
        let mut input = BufReader::with_capacity(1 << 20, Counting { inner: input, count: consumed.clone() });
        let magic = input
            .fill_buf()
            .map_err(|e| StoreError::Invalid { what: "input".into(), reason: e.to_string() })?;
        let compression = Compression::detect(magic);
        let mut check = TarCheck::new();
        let mut tee = Tee { file: DigestWriter::new(file), check: &mut check };
        if compression == Compression::None {
            // Given bytes and content are the same: hash them once.
            copy_limited(input, &mut tee, &path, compression, &consumed)?;
        } else {
            let mut raw = DigestReader::new(input);
            let decoder = compression
                .decompress(BufReader::with_capacity(1 << 20, &mut raw))
                .map_err(|e| StoreError::Invalid { what: "input".into(), reason: e.to_string() })?;
            copy_limited(decoder, &mut tee, &path, compression, &consumed)?;
            staged.raw_digest = raw.digest();
        }
        let Tee { file, .. } = tee;
        staged.size = file.byte_count();
        staged.digest = file.digest();
        file.into_inner().sync_all().map_err(io_error(&path))?;
        if compression == Compression::None {
            staged.raw_digest = staged.digest;
        }
        staged.raw_size = consumed.get();
        staged.compression = compression;
        staged.tar = check.finish();
        Ok(staged)
    }
}

/// Counts the bytes read from the input, for the decompression-bomb check
/// while a decoder holds the reader.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Copies with a large buffer, refusing decompression bombs.
fn copy_limited(
    mut from: impl Read,
    to: &mut Tee<'_>,
    path: &std::path::Path,
    compression: Compression,
    consumed: &Cell<u64>,
) -> Result<()> {
    let mut copied: u64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(StoreError::Invalid {
                    what: "input".into(),
                    reason: format!("reading {} data failed: {e}", compression_name(compression)),
                });
            }
        };
        to.write_all(&buf[..n]).map_err(io_error(path))?;
        copied += n as u64;
        if compression != Compression::None
            && copied > BOMB_FLOOR
            && copied > consumed.get().saturating_mul(BOMB_RATIO)
        {
            return Err(StoreError::Invalid {
                what: "compressed input".into(),
                reason: format!(
                    "it decompresses to more than {BOMB_RATIO} times its size: refused as a decompression bomb"
                ),
            });
        }
    }
}

fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "uncompressed",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}
