//! Layers: the tar streams images are made of.
//!
//! - [`LayerWriter`] appends [`Entry`]s, or a tree with [`write_dir`], as a
//!   deterministic tar: ustar headers, PAX only for what does not fit and for
//!   xattrs (`SCHILY.xattr.*`), no atime/ctime, user names only when given,
//!   whole-second mtimes, directories ending in `/`, trees in sorted byte
//!   order, hardlinks pointing at the first name.
//! - Written layers are compressed as [`Compression`] says and digested on the
//!   way out into a [`LayerSummary`] (`diff_id`, `digest`, sizes).
//! - [`extract()`] applies a layer to a directory: detects the compression, reads
//!   the stream once, checks digest and diff_id at the end ([`ExtractOptions`]),
//!   applies OCI whiteouts (`.wh..wh..opq` hides only what lower layers put
//!   there; other `.wh..wh.*` AUFS files are skipped), and replaces an existing
//!   path unless both are directories, as Docker's applyLayer does; a `./`
//!   entry leaves the destination root's mode and owner alone.
//! - Untrusted layers are contained: names follow [`crate::paths::confined`]
//!   (a leading `/` is the destination root, also for hardlink targets); a `..`
//!   that climbs out, a write, whiteout or hardlink through any symlink, a
//!   hardlink outside or missing, a truncated or corrupt stream and one past
//!   `max_uncompressed_bytes` are [`LayerError`]s naming the entry. Nothing
//!   outside the destination is touched; on error it is left half-written
//!   (extract into a temporary directory).
//! - Devices this process may not create are skipped with an
//!   [`ExtractWarning`], as Docker does; xattrs follow [`XattrPolicy`]; owners
//!   follow [`Ownership`] (kept as root, the extracting user's otherwise, or
//!   remapped by a [`crate::idmap::IdMap`]).
//! - [`check`] finds the same escapes in a tar that is stored, not extracted.
//! - [`Digest`], [`DigestWriter`], [`DigestReader`]: `sha256:` digests of
//!   streams in passing; no layer is ever buffered whole.

pub mod check;
mod compression;
mod destination;
mod digest;
mod entry;
mod error;
mod extract;
mod gzip;
mod read_ahead;
mod write;

pub use compression::{Compression, Decoder, Encoder};
pub use digest::{Digest, DigestReader, DigestWriter};
pub use entry::{Entry, EntryKind};
pub use error::LayerError;
pub use extract::{ExtractOptions, ExtractStats, ExtractWarning, Ownership, XattrPolicy, extract};
pub use gzip::{GZIP_FORMAT, GzipReader};
pub use read_ahead::with_read_ahead;
pub use write::{LayerSummary, LayerWriter, write_dir};
