//! Snapshots: the root filesystems builds and runs work in.
//!
//! - [`Snapshots`] unpacks each base layer once, with the safe
//!   [`layer::extract`](crate::layer::extract), into
//!   `<store>/snapshots/sha256/<chain id>` ([`chain_ids`], as OCI defines them),
//!   shared by every build and run.
//! - A layer dir holds only its layer's files, overlayfs style: a whiteout is a
//!   0/0 character device, an opaque directory carries `trusted.overlay.opaque=y`
//!   (`user.overlay.opaque=y` unpacked rootless, for a `userxattr` mount).
//! - Unpacking goes to a temporary dir renamed into place under a per-layer
//!   lock: a crash never leaves a half-unpacked layer that looks complete, and
//!   concurrent processes wait for each other.
//! - [`Snapshots::prepare`] gives a [`WorkingRoot`] in `snapshots/work/<id>/`:
//!   [`Snapshotter::Overlay`] a fresh upper and work dir and a [`RootDescription`]
//!   the sandbox mounts (never this module; `metacopy=off`,
//!   `redirect_dir=nofollow`, see [`RootDescription::overlay_options`]);
//!   [`Snapshotter::Copy`], where overlay cannot be mounted, a copy (reflinked
//!   where possible) of the merged layers with every path's state recorded.
//! - [`WorkingRoot::diff`] writes the changes as a layer with OCI whiteouts
//!   through [`LayerWriter`](crate::layer::LayerWriter); both snapshotters give
//!   the byte-identical layer for the same change.
//! - [`WorkingRoot::release`] (or drop) removes the working dir; a killed
//!   process's is removed by the next [`Snapshots::open`], which tells live from
//!   dead by a lock held while in use.
//! - Which snapshotter: `HOIST_SNAPSHOTTER=overlay|copy`, else
//!   [`overlay_supported`] probes with a test mount in a child process.
//! - Ids as root: unpacking keeps a layer's owners (or remaps them by an
//!   [`IdMap`]) and the diff translates them back.
//! - Ids rootless: unpacking, copying, diffing and removing run as root of a
//!   user namespace with a rootless sandbox's maps
//!   ([`crate::sandbox::as_namespace_root`]): ids within the subordinate ranges
//!   are kept, the diff reads owners as the container saw them. Without
//!   subordinate ids files are the caller's (uid 0 inside); without user
//!   namespaces unpacking does that in this process. A store is per user, so
//!   its layer dirs, keyed by chain ID alone, have one mapping.
//! - Many layers do not fit the `lowerdir=` option string; the sandbox
//!   passes them with `fsconfig` (`lowerdir+`), top first as listed.

mod diff;
mod lower;
mod probe;
mod recorded;
mod unpack;
mod view;
mod working;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use crate::idmap::IdMap;
use crate::layer::{Digest, LayerError};
use crate::store::{Image, Store, StoreError};

/// The components of a container path from `/`; kept under this name for
/// COPY's callers ([`crate::paths::rooted_components`]).
pub use crate::paths::rooted_components as components;
pub use probe::overlay_supported;
pub use unpack::namespace_ownership;
pub use view::{Found, MergedView};
pub use working::remove_tree;
pub use working::{RootDescription, WorkingRoot};

/// Everything that can go wrong with snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A filesystem operation on the host failed.
    #[error("{path}: {source}")]
    Io {
        /// The host path operated on.
        path: PathBuf,
        /// The operation's error.
        source: io::Error,
    },
    /// Opening a layer blob in the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Extracting a layer into its layer dir failed.
    #[error("cannot unpack layer {diff_id}: {source}")]
    Unpack {
        /// The sha256 of the layer's uncompressed tar.
        diff_id: Digest,
        /// Why extraction failed.
        #[source]
        source: LayerError,
    },
    /// Reading a working root's changes or writing them as a layer failed.
    #[error("cannot write the layer diff: {0}")]
    Diff(#[source] LayerError),
    /// `HOIST_SNAPSHOTTER` is set to neither `overlay` nor `copy`.
    #[error("HOIST_SNAPSHOTTER={value:?} names no snapshotter: use `overlay` or `copy`")]
    UnknownSnapshotter {
        /// The variable's value.
        value: String,
    },
    /// An image's manifest and config disagree about its layers.
    #[error("image {image}: {reason}")]
    Image {
        /// The image ID (sha256 of its config).
        image: Digest,
        /// What disagrees.
        reason: String,
    },
    /// What the user-namespace helper reported (it names its paths).
    #[error("{0}")]
    Helper(String),
    /// The user-namespace helper could not be run, or passing its output back failed.
    #[error("the user-namespace helper failed: {0}")]
    HelperFailed(io::Error),
}

/// Runs `work` as the root of a user namespace with a rootless sandbox's
/// maps ([`crate::sandbox::as_namespace_root`]). What it writes reaches
/// `read` here as it comes; what it returns comes back as its reply.
fn as_namespace_root(
    work: impl FnOnce(&mut dyn io::Write) -> Result<Vec<u8>, SnapshotError>,
    read: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<Vec<u8>, SnapshotError> {
    match crate::sandbox::as_namespace_root(|out| work(out).map_err(|e| e.to_string()), read) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(message)) => Err(SnapshotError::Helper(message)),
        Err(e) => Err(SnapshotError::HelperFailed(e)),
    }
}

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.into();
    move |source| SnapshotError::Io { path, source }
}

/// How working roots are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snapshotter {
    /// Overlayfs: layer dirs as lower dirs, changes land in an upper dir.
    Overlay,
    /// A private copy of the merged layers, diffed against what was copied.
    Copy,
}

impl FromStr for Snapshotter {
    type Err = SnapshotError;

    fn from_str(value: &str) -> Result<Snapshotter, SnapshotError> {
        match value {
            "overlay" => Ok(Snapshotter::Overlay),
            "copy" => Ok(Snapshotter::Copy),
            _ => Err(SnapshotError::UnknownSnapshotter { value: value.to_owned() }),
        }
    }
}

/// A layer as a snapshot needs it: the blob in the store and the digest of
/// its uncompressed tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    /// The blob's digest in the store: the manifest's (compressed) layer digest.
    pub digest: Digest,
    /// The sha256 of the uncompressed layer tar: the config's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
}

impl LayerBlob {
    /// The layers of `image`, bottom first, pairing the manifest's blobs
    /// with the config's diff_ids.
    pub fn of_image(image: &Image) -> Result<Vec<LayerBlob>, SnapshotError> {
        let invalid = |reason: String| SnapshotError::Image { image: image.id(), reason };
        let blobs = image.layers();
        let diff_ids = &image.config.rootfs.diff_ids;
        if blobs.len() != diff_ids.len() {
            return Err(invalid(format!(
                "the manifest lists {} layers but the config {} diff_ids",
                blobs.len(),
                diff_ids.len()
            )));
        }
        blobs
            .iter()
            .zip(diff_ids)
            .map(|((digest, _), diff_id)| {
                let diff_id = diff_id.parse().map_err(|e| invalid(format!("diff_id {diff_id:?}: {e}")))?;
                Ok(LayerBlob { digest: *digest, diff_id })
            })
            .collect()
    }
}

/// The chain ID of each layer of a stack (bottom first): the first layer's
/// diff_id, then `sha256(previous chain ID + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut chain: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let id = match chain.last() {
            None => *diff_id,
            Some(parent) => Digest::sha256(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(id);
    }
    chain
}

/// The snapshots of one store.
#[derive(Debug, Clone)]
pub struct Snapshots {
    store: Store,
    dir: PathBuf,
    snapshotter: Snapshotter,
    id_map: Option<IdMap>,
}

/// Probe results by snapshots directory: a probe costs a fork and a mount.
static PROBED: Mutex<Option<HashMap<PathBuf, bool>>> = Mutex::new(None);

impl Snapshots {
    /// The snapshots of `store`, with the snapshotter `HOIST_SNAPSHOTTER`
    /// names, else overlay if [`overlay_supported`] on the store's
    /// filesystem, else copy. Removes working roots of dead processes.
    pub fn open(store: &Store) -> Result<Snapshots, SnapshotError> {
        let dir = snapshots_dir(store)?;
        let snapshotter = match std::env::var("HOIST_SNAPSHOTTER") {
            Ok(value) if !value.is_empty() => value.parse()?,
            _ => {
                let mut probed = PROBED.lock().unwrap_or_else(|e| e.into_inner());
                let supported = *probed
                    .get_or_insert_with(HashMap::new)
                    .entry(dir.clone())
                    .or_insert_with(|| overlay_supported(&dir));
                if supported { Snapshotter::Overlay } else { Snapshotter::Copy }
            }
        };
        Snapshots::with_snapshotter(store, snapshotter)
    }

    /// The snapshots of `store`, with the snapshotter given.
    pub fn with_snapshotter(store: &Store, snapshotter: Snapshotter) -> Result<Snapshots, SnapshotError> {
        let dir = snapshots_dir(store)?;
        working::remove_stale(&dir.join("work"));
        let snapshots = Snapshots { store: store.clone(), dir, snapshotter, id_map: None };
        snapshots.remove_stale_partials();
        Ok(snapshots)
    }

    /// Uses `id_map` to give files the owners the layer records when
    /// unpacking as root, and to translate owners back when diffing.
    /// Rootless it has no use: the work runs in the user namespace of the
    /// sandboxes, whose maps decide.
    pub fn with_id_map(mut self, id_map: IdMap) -> Snapshots {
        self.id_map = Some(id_map);
        self
    }

    /// How these snapshots make working roots.
    pub fn snapshotter(&self) -> Snapshotter {
        self.snapshotter
    }

    /// `<store>/snapshots`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the layer with this chain ID is (or would be) unpacked.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join("sha256").join(chain_id.hex())
    }

    /// Unpacks every layer not unpacked yet and returns the layer dirs,
    /// bottom first. Safe to call from several threads and processes at
    /// once; each layer is extracted once.
    pub fn unpack(&self, layers: &[LayerBlob]) -> Result<Vec<PathBuf>, SnapshotError> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id).collect();
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(layers.len());
        for (layer, chain_id) in layers.iter().zip(chain_ids(&diff_ids)) {
            let dir = self.layer_dir(&chain_id);
            unpack::unpack_layer(self, layer, &chain_id, &dir, &dirs)?;
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// Unpacks `layers` and makes a fresh working root on top of them.
    pub fn prepare(&self, layers: &[LayerBlob]) -> Result<WorkingRoot, SnapshotError> {
        let lowers = self.unpack(layers)?;
        WorkingRoot::create(self, lowers)
    }

    /// Removes every unpacked layer whose chain ID is not in `keep`. The
    /// caller makes sure no working root uses the others (the store's
    /// exclusive lock).
    pub fn remove_unused(&self, keep: &[Digest]) -> Result<Vec<Digest>, SnapshotError> {
        let layers = self.dir.join("sha256");
        let mut removed = Vec::new();
        for entry in fs::read_dir(&layers).map_err(io_error(&layers))? {
            let entry = entry.map_err(io_error(&layers))?;
            let Some(chain_id) = entry.file_name().to_str().and_then(|h| format!("sha256:{h}").parse().ok())
            else {
                continue;
            };
            if keep.contains(&chain_id) {
                continue;
            }
            let _lock = self.layer_lock(&chain_id)?;
            // Renamed away first, so nobody sees a half-removed layer.
            let doomed = self.dir.join("partial").join(format!("{}.removing", chain_id.hex()));
            fs::rename(entry.path(), &doomed).map_err(io_error(entry.path()))?;
            working::remove_tree(&doomed).map_err(io_error(&doomed))?;
            removed.push(chain_id);
        }
        Ok(removed)
    }

    /// The lock serialising unpacking (and removal) of one layer.
    fn layer_lock(&self, chain_id: &Digest) -> Result<File, SnapshotError> {
        let file = self.layer_lock_file(&chain_id.hex())?;
        file.lock().map_err(io_error(self.dir.join("locks")))?;
        Ok(file)
    }

    fn layer_lock_file(&self, hex: &str) -> Result<File, SnapshotError> {
        let path = self.dir.join("locks").join(format!("{hex}.lock"));
        OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))
    }

    /// Removes what a process killed while unpacking or removing a layer
    /// left in `partial/`: whatever no one holds the layer's lock for.
    fn remove_stale_partials(&self) {
        let partial = self.dir.join("partial");
        let Ok(entries) = fs::read_dir(&partial) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let hex = name.strip_suffix(".removing").unwrap_or(&name);
            let Ok(lock) = self.layer_lock_file(hex) else { continue };
            if lock.try_lock().is_ok() {
                let _ = working::remove_tree(&entry.path());
            }
        }
    }
}

fn snapshots_dir(store: &Store) -> Result<PathBuf, SnapshotError> {
    let dir = store.root().join("snapshots");
    for sub in ["sha256", "locks", "partial", "work"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).map_err(io_error(&path))?;
    }
    Ok(dir)
}

/// The xattr that marks an opaque directory for the overlay mounts this
/// process would make: `trusted.*` needs root, a rootless (`userxattr`)
/// mount reads `user.*`.
fn opaque_xattr() -> &'static str {
    if !crate::idmap::rootless() { "trusted.overlay.opaque" } else { "user.overlay.opaque" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::sha256(&[n])
    }

    #[test]
    fn chain_id_of_the_first_layer_is_its_diff_id() {
        assert_eq!(chain_ids(&[digest(1)]), vec![digest(1)]);
    }

    #[test]
    fn chain_id_hashes_parent_space_diff_id() {
        let ids = chain_ids(&[digest(1), digest(2)]);
        let expected = Digest::sha256(format!("{} {}", digest(1), digest(2)).as_bytes());
        assert_eq!(ids[1], expected);
    }

    #[test]
    fn snapshotter_names_parse() {
        assert_eq!("overlay".parse::<Snapshotter>().unwrap(), Snapshotter::Overlay);
        assert_eq!("copy".parse::<Snapshotter>().unwrap(), Snapshotter::Copy);
        assert!(matches!("aufs".parse::<Snapshotter>(), Err(SnapshotError::UnknownSnapshotter { .. })));
    }
}
