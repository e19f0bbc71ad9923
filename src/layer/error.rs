use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

use super::Digest;

/// Everything that can go wrong writing or extracting a layer.
///
/// `entry` is always the member name exactly as the tar spells it, so a
/// report points at the offending member. Errors from extraction leave the
/// destination half-written: discard it.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A digest string is not `sha256:` and 64 lowercase hex digits.
    #[error("invalid digest {input:?}: expected `sha256:` followed by 64 lowercase hex digits")]
    InvalidDigest {
        /// The string as given.
        input: String,
    },

    /// The layer is compressed in a format OCI layers may not use.
    #[error(
        "the layer is {format}-compressed; OCI layers must be plain tar, gzip or zstd: \
         recompress it with gzip or zstd"
    )]
    UnsupportedCompression {
        /// The compression recognised, such as `xz` or `bzip2`.
        format: &'static str,
    },

    /// An entry's name has a `..` that climbs above the destination root.
    #[error(
        "layer entry {entry:?} climbs out of the destination with `..`; \
         the layer is corrupt or hostile and must not be used"
    )]
    PathEscapes {
        /// The entry's name.
        entry: PathBuf,
    },

    /// An entry, whiteout or hardlink would be reached through a symlink
    /// already in the destination.
    #[error(
        "layer entry {entry:?} would be written through the symlink {symlink:?}; \
         entries are never written through symlinks, the layer must not be used"
    )]
    ThroughSymlink {
        /// The entry's name.
        entry: PathBuf,
        /// The symlink in the way, relative to the destination root.
        symlink: PathBuf,
    },

    /// An ancestor of an entry exists in the destination but is not a directory.
    #[error(
        "layer entry {entry:?} needs {parent:?} to be a directory, but it is another kind \
         of file; the layer does not apply on top of this tree"
    )]
    NotADirectory {
        /// The entry's name.
        entry: PathBuf,
        /// The ancestor that is not a directory, relative to the destination root.
        parent: PathBuf,
    },

    /// A hardlink's target climbs above the destination root.
    #[error(
        "hardlink {entry:?} points to {target:?}, outside the destination; \
         the layer is corrupt or hostile and must not be used"
    )]
    LinkEscapes {
        /// The hardlink's name.
        entry: PathBuf,
        /// The target as the tar spells it.
        target: PathBuf,
    },

    /// A hardlink's target is not in the destination when the hardlink is
    /// extracted, or is the hardlink itself.
    #[error(
        "hardlink {entry:?} points to {target:?}, which does not exist (a hardlink must \
         come after its target in the layer, or the target must be in a lower layer)"
    )]
    LinkTargetMissing {
        /// The hardlink's name.
        entry: PathBuf,
        /// The target as the tar spells it.
        target: PathBuf,
    },

    /// An entry's tar type is none a layer may hold (not a file, directory,
    /// link, device or fifo).
    #[error(
        "layer entry {entry:?} has tar type {type_flag:?}, which a layer cannot hold \
         (files, directories, links, devices and fifos only)"
    )]
    UnsupportedEntryType {
        /// The entry's name.
        entry: PathBuf,
        /// The header's type flag byte (offset 156), as a character.
        type_flag: char,
    },

    /// An entry cannot be read from or written to a tar as it is: a bad
    /// name, link target, number, PAX record or extended attribute.
    #[error("layer entry {entry:?} is invalid: {reason}")]
    InvalidEntry {
        /// The entry's name.
        entry: PathBuf,
        /// What is wrong with it, as a sentence fragment.
        reason: String,
    },

    /// The layer stream ends before the tar's end-of-archive blocks, or
    /// inside a compressed frame.
    #[error("the layer ends early{}: the download or file is truncated, fetch it again", last_entry(entry))]
    Truncated {
        /// The last entry whose header was read; `None` if none was.
        entry: Option<PathBuf>,
    },

    /// The layer's bytes are not a valid tar or compressed stream.
    #[error(
        "the layer is not a valid {what}{}: {source}; fetch it again, or check its media type",
        last_entry(entry)
    )]
    Corrupt {
        /// The format that failed to parse: `tar archive`, `gzip stream` or
        /// `zstd stream`.
        what: &'static str,
        /// The last entry whose header was read; `None` if none was.
        entry: Option<PathBuf>,
        /// The parser's or decompressor's error.
        #[source]
        source: io::Error,
    },

    /// The uncompressed tar grows past
    /// [`ExtractOptions::max_uncompressed_bytes`](super::ExtractOptions::max_uncompressed_bytes).
    #[error(
        "the layer grows past the limit of {limit} uncompressed bytes{}: \
         it may be a decompression bomb; raise the limit only if the layer is trusted",
        last_entry(entry)
    )]
    TooLarge {
        /// The limit, in uncompressed bytes.
        limit: u64,
        /// The last entry whose header was read; `None` if none was.
        entry: Option<PathBuf>,
    },

    /// The sha256 of the layer's bytes as read (compressed) is not
    /// [`ExtractOptions::expected_digest`](super::ExtractOptions::expected_digest).
    #[error(
        "the layer's digest is {actual}, but {expected} was expected: \
         the blob is corrupt or is not the one asked for"
    )]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
    },

    /// The sha256 of the uncompressed tar is not
    /// [`ExtractOptions::expected_diff_id`](super::ExtractOptions::expected_diff_id).
    #[error(
        "the layer's diff_id (digest of the uncompressed tar) is {actual}, but {expected} \
         was expected: the image config does not match this layer"
    )]
    DiffIdMismatch {
        /// The diff_id asked for.
        expected: Digest,
        /// The sha256 of the uncompressed tar as read.
        actual: Digest,
    },

    /// Changing an extracted file's owner failed, typically for want of
    /// privilege.
    #[error(
        "cannot give {entry:?} the owner {uid}:{gid}: {source}; extract as root, \
         or choose Ownership::Ignore or an id mapping"
    )]
    Ownership {
        /// The entry's name.
        entry: PathBuf,
        /// The owning user id the layer records (before any id mapping).
        uid: u64,
        /// The owning group id the layer records (before any id mapping).
        gid: u64,
        /// The `chown` error.
        #[source]
        source: io::Error,
    },

    /// An entry's owner has no host id to become: the id mapping does not
    /// cover it, or it does not fit `chown` (`u32::MAX` or more).
    #[error("layer entry {entry:?} is owned by {kind} {id}, which the id mapping does not cover")]
    UnmappedId {
        /// The entry's name.
        entry: PathBuf,
        /// Which id: `uid` or `gid`.
        kind: &'static str,
        /// The id the layer records.
        id: u64,
    },

    /// Setting an extended attribute failed under
    /// [`XattrPolicy::Require`](super::XattrPolicy::Require).
    #[error(
        "cannot set the extended attribute {name:?} on {entry:?}: {source}; \
         extract as root, or choose XattrPolicy::BestEffort"
    )]
    Xattr {
        /// The entry's name.
        entry: PathBuf,
        /// The attribute's name, such as `security.capability`.
        name: OsString,
        /// The `setxattr` error.
        #[source]
        source: io::Error,
    },

    /// A file's contents, given to [`LayerWriter::append`](super::LayerWriter::append),
    /// failed to read or ended before the entry's size.
    #[error("reading the contents of {entry:?} failed: {source}")]
    Contents {
        /// The entry's name.
        entry: PathBuf,
        /// The read error, or `UnexpectedEof` saying how many bytes came.
        #[source]
        source: io::Error,
    },

    /// Reading the layer's bytes from their source failed.
    #[error("reading the layer failed: {source}")]
    Input {
        /// The reader's error.
        #[source]
        source: io::Error,
    },

    /// Writing the layer's bytes to their destination failed.
    #[error("writing the layer failed: {source}")]
    Output {
        /// The writer's error.
        #[source]
        source: io::Error,
    },

    /// A filesystem operation on this host failed.
    #[error("{path:?}: {source}")]
    Filesystem {
        /// The host path operated on.
        path: PathBuf,
        /// The operation's error.
        #[source]
        source: io::Error,
    },
}

fn last_entry(entry: &Option<PathBuf>) -> String {
    match entry {
        Some(entry) => format!(" (last entry read: {entry:?})"),
        None => String::new(),
    }
}
