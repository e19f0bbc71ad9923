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
    #[error("invalid digest {input:?}: expected `sha256:` followed by 64 lowercase hex digits")]
    InvalidDigest { input: String },

    #[error(
        "the layer is {format}-compressed; OCI layers must be plain tar, gzip or zstd: \
         recompress it with gzip or zstd"
    )]
    UnsupportedCompression { format: &'static str },

    #[error(
        "layer entry {entry:?} climbs out of the destination with `..`; \
         the layer is corrupt or hostile and must not be used"
    )]
    PathEscapes { entry: PathBuf },

    #[error(
        "layer entry {entry:?} would be written through the symlink {symlink:?}; \
         entries are never written through symlinks, the layer must not be used"
    )]
    ThroughSymlink { entry: PathBuf, symlink: PathBuf },

    #[error(
        "layer entry {entry:?} needs {parent:?} to be a directory, but it is another kind \
         of file; the layer does not apply on top of this tree"
    )]
    NotADirectory { entry: PathBuf, parent: PathBuf },

    #[error(
        "hardlink {entry:?} points to {target:?}, outside the destination; \
         the layer is corrupt or hostile and must not be used"
    )]
    LinkEscapes { entry: PathBuf, target: PathBuf },

    #[error(
        "hardlink {entry:?} points to {target:?}, which does not exist (a hardlink must \
         come after its target in the layer, or the target must be in a lower layer)"
    )]
    LinkTargetMissing { entry: PathBuf, target: PathBuf },

    #[error(
        "layer entry {entry:?} has tar type {type_flag:?}, which a layer cannot hold \
         (files, directories, links, devices and fifos only)"
    )]
    UnsupportedEntryType { entry: PathBuf, type_flag: char },

    #[error("layer entry {entry:?} is invalid: {reason}")]
    InvalidEntry { entry: PathBuf, reason: String },

    #[error("the layer ends early{}: the download or file is truncated, fetch it again", last_entry(entry))]
    Truncated { entry: Option<PathBuf> },

    #[error(
        "the layer is not a valid {what}{}: {source}; fetch it again, or check its media type",
        last_entry(entry)
    )]
    Corrupt {
        what: &'static str,
        entry: Option<PathBuf>,
        #[source]
        source: io::Error,
    },

    #[error(
        "the layer grows past the limit of {limit} uncompressed bytes{}: \
         it may be a decompression bomb; raise the limit only if the layer is trusted",
        last_entry(entry)
    )]
    TooLarge { limit: u64, entry: Option<PathBuf> },

    #[error(
        "the layer's digest is {actual}, but {expected} was expected: \
         the blob is corrupt or is not the one asked for"
    )]
    DigestMismatch { expected: Digest, actual: Digest },

    #[error(
        "the layer's diff_id (digest of the uncompressed tar) is {actual}, but {expected} \
         was expected: the image config does not match this layer"
    )]
    DiffIdMismatch { expected: Digest, actual: Digest },

    #[error(
        "cannot give {entry:?} the owner {uid}:{gid}: {source}; extract as root, \
         or choose Ownership::Ignore or an id mapping"
    )]
    Ownership {
        entry: PathBuf,
        uid: u64,
        gid: u64,
        #[source]
        source: io::Error,
    },

    #[error("layer entry {entry:?} is owned by {kind} {id}, which the id mapping does not cover")]
    UnmappedId { entry: PathBuf, kind: &'static str, id: u64 },

    #[error(
        "cannot set the extended attribute {name:?} on {entry:?}: {source}; \
         extract as root, or choose XattrPolicy::BestEffort"
    )]
    Xattr {
        entry: PathBuf,
        name: OsString,
        #[source]
        source: io::Error,
    },

    #[error("reading the contents of {entry:?} failed: {source}")]
    Contents {
        entry: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("reading the layer failed: {source}")]
    Input {
        #[source]
        source: io::Error,
    },

    #[error("writing the layer failed: {source}")]
    Output {
        #[source]
        source: io::Error,
    },

    #[error("{path:?}: {source}")]
    Filesystem {
        path: PathBuf,
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
