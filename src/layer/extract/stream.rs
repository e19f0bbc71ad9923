//! The bytes of a layer on their way to the extractor.
//!
//! - [`Input`]: the layer as given, hashed and counted, remembering whether
//!   reading failed or ended.
//! - [`TarStream`]: the uncompressed tar, hashed, counted and capped; it
//!   tells what a failed read really was (a cut-short stream, a corrupt
//!   one, the size limit).
//! - [`read_meta`]: one member's mode, owner, mtime and extended attributes.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::Timespec;

use super::Meta;
use crate::layer::compression::Decoder;
use crate::layer::{Compression, DigestReader, LayerError};

/// The layer as read: hashed and counted, remembering whether reading
/// failed or ended, so a later error is blamed on the right cause.
pub(super) struct Input<R> {
    /// The bytes as given, hashed and counted.
    pub(super) inner: DigestReader<R>,
    failed: bool,
    ended: bool,
}

impl<R: Read> Input<R> {
    pub(super) fn new(inner: R) -> Input<R> {
        Input { inner: DigestReader::new(inner), failed: false, ended: false }
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.ended = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// The uncompressed tar stream: hashed, counted and capped.
pub(super) struct TarStream<R: Read> {
    /// The decompressed bytes, hashed and counted.
    pub(super) inner: DigestReader<Decoder<BufReader<Input<R>>>>,
    limit: Option<u64>,
    over_limit: bool,
    /// The stream ended (a read returned 0).
    pub(super) ended: bool,
    /// Decompression failed.
    failed: bool,
}

impl<R: Read> TarStream<R> {
    pub(super) fn new(decoder: Decoder<BufReader<Input<R>>>, limit: Option<u64>) -> TarStream<R> {
        TarStream { inner: DigestReader::new(decoder), limit, over_limit: false, ended: false, failed: false }
    }

    pub(super) fn input(&self) -> &Input<R> {
        self.inner.get_ref().get_ref().get_ref()
    }

    /// Replaces a `Corrupt` error, which is what a failed read looks like
    /// from inside the tar parser, by its real cause.
    pub(super) fn explain(&self, err: LayerError) -> LayerError {
        let LayerError::Corrupt { what, entry, source } = err else {
            return err;
        };
        if self.over_limit {
            let limit = self.limit.unwrap_or_default();
            return LayerError::TooLarge { limit, entry };
        }
        let input = self.input();
        if input.failed {
            return LayerError::Input { source };
        }
        if self.failed {
            // A decompressor that ran out of input was cut short, not fed garbage.
            if input.ended || source.kind() == io::ErrorKind::UnexpectedEof {
                return LayerError::Truncated { entry };
            }
            let what = match self.inner.get_ref().compression() {
                Compression::Gzip => "gzip stream",
                Compression::Zstd => "zstd stream",
                Compression::None => what,
            };
            return LayerError::Corrupt { what, entry, source };
        }
        if self.ended {
            return LayerError::Truncated { entry };
        }
        LayerError::Corrupt { what, entry, source }
    }
}

impl<R: Read> Read for TarStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.over_limit {
            return Err(io::Error::other("the uncompressed size limit was exceeded"));
        }
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.ended = true;
                Ok(0)
            }
            Ok(n) => {
                if let Some(limit) = self.limit
                    && self.inner.byte_count() > limit
                {
                    self.over_limit = true;
                    return Err(io::Error::other("the uncompressed size limit was exceeded"));
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Mode, owner, mtime (with PAX's sub-second precision) and `SCHILY.xattr.*`.
pub(super) fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &Path) -> Result<Meta, LayerError> {
    let invalid = |what: &str, e: &dyn fmt::Display| LayerError::InvalidEntry {
        entry: name.to_owned(),
        reason: format!("bad {what}: {e}"),
    };
    let header = entry.header();
    let mode = header.mode().map_err(|e| invalid("mode", &e))? & 0o7777;
    let uid = header.uid().map_err(|e| invalid("uid", &e))?;
    let gid = header.gid().map_err(|e| invalid("gid", &e))?;
    let seconds = header.mtime().map_err(|e| invalid("mtime", &e))?;
    let mut mtime =
        Timespec { tv_sec: i64::try_from(seconds).map_err(|e| invalid("mtime", &e))?, tv_nsec: 0 };
    let mut xattrs = Vec::new();
    let extensions = entry.pax_extensions().map_err(|source| LayerError::Corrupt {
        what: "tar archive",
        entry: Some(name.to_owned()),
        source,
    })?;
    for extension in extensions.into_iter().flatten() {
        let extension = extension.map_err(|e| invalid("PAX record", &e))?;
        let key = extension.key_bytes();
        if key == b"mtime" {
            mtime = parse_pax_time(extension.value_bytes())
                .ok_or_else(|| invalid("PAX mtime", &String::from_utf8_lossy(extension.value_bytes())))?;
        } else if let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") {
            xattrs.push((OsStr::from_bytes(xattr).to_owned(), extension.value_bytes().to_vec()));
        }
    }
    Ok(Meta { mode, uid, gid, mtime, xattrs })
}

/// A PAX time: decimal seconds, optionally negative, optionally with a
/// fraction (`-1.5` is 1.5 seconds before the epoch).
pub(super) fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let nanos: i64 = format!("{:0<9}", &fraction[..fraction.len().min(9)]).parse().ok()?;
    Some(match (negative, nanos) {
        (false, _) => Timespec { tv_sec: seconds, tv_nsec: nanos },
        (true, 0) => Timespec { tv_sec: -seconds, tv_nsec: 0 },
        (true, _) => Timespec { tv_sec: -seconds - 1, tv_nsec: 1_000_000_000 - nanos },
    })
}
