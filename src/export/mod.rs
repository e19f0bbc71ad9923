//! Export: images into the store and out of it, the pipeline's last stage.
//!
//! - [`commit`]: a built stage becomes an image in the store, tagged.
//! - [`output`]: a build's `--output` forms (archive, directory, rootfs tar).
//! - [`archive`]: `hoist save` / `hoist load` (docker-archive and OCI archive).
//! - [`import`]: `hoist import`, a rootfs tarball as a one-layer image.
//!
//! Above `store` and `solve`; nothing below imports it.

pub mod archive;
pub mod import;
pub mod output;

pub use output::Output;

use std::path::PathBuf;

use crate::image::reference::Reference;
use crate::solve::BuiltStage;
use crate::store::{Image, Store, StoreError};

/// An output that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing an archive failed.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    /// A file of the output could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A layer could not be laid out or read back.
    #[error("writing {}: {source}", path.display())]
    Layer {
        /// The output.
        path: PathBuf,
        /// Why.
        source: crate::layer::LayerError,
    },
    /// The user-namespace helper (rootless) failed.
    #[error("{}: the user-namespace helper failed: {message}", path.display())]
    NamespaceHelper {
        /// The output.
        path: PathBuf,
        /// What it reported.
        message: String,
    },
}

/// Commits a built stage as an image in the store, tagged with `names`.
pub fn commit(store: &Store, built: &BuiltStage, names: &[Reference]) -> Result<Image, ExportError> {
    let config_bytes = serde_json::to_vec(&built.config).expect("config serialises");
    let layers: Vec<_> = built.layers.iter().map(|l| (l.digest, l.size)).collect();
    Ok(store.commit_image(&config_bytes, &layers, names)?)
}
