//! `hoist import`: a one-layer image from a root filesystem tarball, as `docker import` makes it.
//!
//! - [`import`]: the tarball (plain, gzip or zstd) becomes the image's only
//!   layer, tagged if a name is given.
//! - [`apply_change`]: one `--change` instruction applied to the
//!   configuration, by `plan::config`, which owns what an instruction means.
//! - [`ImportOptions`], [`ImportError`]: what to record, and what can fail.

use std::io::Read;
use std::time::SystemTime;

use crate::image::config::{History, ImageConfig};
use crate::image::reference::Reference;
use crate::image::time::rfc3339;
use crate::plan::config::{apply, parse_change};
use crate::store::{Image, Store, StoreError};

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `--change` that is not an instruction import can apply.
    #[error("--change {change:?}: {message}")]
    Change {
        /// The `--change` text as given.
        change: String,
        /// Why it was refused.
        message: String,
    },
    /// The input is not a layer tar hoist accepts.
    #[error("{source_name} is not a usable root filesystem tarball: {problem}")]
    Layer {
        /// How the input is named ([`ImportOptions::source_name`]).
        source_name: String,
        /// What is wrong with it.
        problem: crate::layer::check::TarProblem,
    },
}

/// What to record besides the layer.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions applied to the config (`CMD ["sh"]`, …).
    pub changes: Vec<String>,
    /// The history comment; Docker writes "Imported from <source>".
    pub message: Option<String>,
    /// How the input is named in messages and in the history.
    pub source_name: String,
}

/// Imports a rootfs tarball as a new image, tagged `name` if given.
pub fn import(
    store: &Store,
    input: impl Read,
    name: Option<&Reference>,
    options: &ImportOptions,
) -> Result<Image, ImportError> {
    let mut config = ImageConfig::new_for_host();
    for change in &options.changes {
        apply_change(&mut config, change)?;
    }
    let _lock = store.lock(false)?;
    let layer = store.stage(input)?;
    if let Err(problem) = &layer.tar {
        return Err(ImportError::Layer {
            source_name: options.source_name.clone(),
            problem: problem.clone(),
        });
    }
    let created = rfc3339(SystemTime::now());
    let comment = options.message.clone().unwrap_or_else(|| format!("Imported from {}", options.source_name));
    config.created = Some(created.clone());
    config.rootfs.diff_ids = vec![layer.digest.to_string()];
    config.history = vec![History { created: Some(created), comment: Some(comment), ..History::default() }];
    let config_bytes = serde_json::to_vec(&config).expect("config serialises");
    let size = layer.size;
    let layer_digest = layer.commit()?;
    let names: Vec<Reference> = name.cloned().into_iter().collect();
    Ok(store.commit_image(&config_bytes, &[(layer_digest, size)], &names)?)
}

/// Parses one `--change` as a Dockerfile instruction and applies it.
pub fn apply_change(config: &mut ImageConfig, change: &str) -> Result<(), ImportError> {
    let parsed = parse_change(change, config)
        .map_err(|message| ImportError::Change { change: change.to_string(), message })?;
    apply(config, &parsed);
    Ok(())
}
