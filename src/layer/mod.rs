//! Layers: the tar streams images are made of. [`LayerWriter`] appends
//! [`Entry`]s, or a whole tree with [`write_dir`], as a deterministic tar
//! (ustar headers; PAX records only for what does not fit and for xattrs as
//! `SCHILY.xattr.*`; no atime/ctime; user names only when given; mtimes in
//! whole seconds; directories named with a trailing `/`; trees in sorted
//! byte order, hardlinks pointing at the first name), compressed as
//! [`Compression`] says and digested on the way out into a
//! [`LayerSummary`] (`diff_id`, `digest`, sizes). [`extract`] applies a
//! layer to a directory: it detects the compression, reads the stream once,
//! checks the expected digest and diff_id at the end ([`ExtractOptions`]),
//! applies OCI whiteouts (`.wh.name`; `.wh..wh..opq` hides only what lower
//! layers put there, wherever it appears in the tar; other `.wh..wh.*` AUFS
//! files are skipped) and replaces an existing path unless both are
//! directories, as Docker's applyLayer does; a `./` entry is ignored, so
//! the destination root keeps its mode and owner. Untrusted layers are
//! contained: names are resolved lexically, a leading `/` meaning the
//! destination root (Docker's behaviour, also for hardlink targets), but a
//! `..` that climbs out, any write, whiteout or hardlink through a symlink
//! (even one pointing inside), a hardlink whose target is outside or
//! missing, a stream that is truncated (including one missing its
//! end-of-archive blocks) or corrupt, and one past `max_uncompressed_bytes`
//! are [`LayerError`]s naming the entry; nothing is ever created or changed
//! outside the destination, which is left half-written on error (extract
//! into a temporary directory). Device nodes this process may not create
//! (rootless, user namespaces) are skipped with an [`ExtractWarning`], as
//! Docker does; xattrs follow [`XattrPolicy`] (best effort by default);
//! owners follow [`Ownership`] (kept as root, left to the extracting user
//! otherwise, or remapped by a [`crate::idmap::IdMap`]). [`Digest`], [`DigestWriter`] and
//! [`DigestReader`] compute `sha256:` digests of streams in passing; no
//! layer is ever buffered whole.

pub mod check;
mod compression;
mod destination;
mod digest;
mod entry;
mod error;
mod extract;
mod write;

pub use compression::{Compression, Decoder, Encoder};
pub use digest::{Digest, DigestReader, DigestWriter};
pub use entry::{Entry, EntryKind};
pub use error::LayerError;
pub use extract::{ExtractOptions, ExtractStats, ExtractWarning, Ownership, XattrPolicy, extract};
pub use write::{LayerSummary, LayerWriter, write_dir};
