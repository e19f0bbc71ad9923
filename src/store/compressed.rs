//! What the store knows of its layers' compressed forms and where
//! registries hold them, and the repo digests of its images.
//!
//! - [`CompressedForm`]: a layer (stored uncompressed) as a registry holds
//!   it: the compressed digest, size and media type, whether hoist's own
//!   compressor makes exactly those bytes, and the repositories known to
//!   have it. Kept in `cache/compressed/<diff ID hex>.json`, so that a push
//!   skips or mounts what a registry has, and does not compress twice.
//! - [`Store::add_repo_digest`]: `name@sha256:…` after a pull or push, an
//!   entry of `index.json` naming the image by the registry's manifest
//!   digest (what `docker inspect` shows as `RepoDigests`).

use std::fs;

use serde::{Deserialize, Serialize};

use super::{IndexEntry, Result, Store, StoreError, descriptor_digest, io_error};
use crate::image::reference::Reference;
use crate::layer::Digest;

use super::Image;

/// A layer as a registry holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedForm {
    /// `sha256:<hex>` of the compressed bytes.
    pub digest: String,
    /// Their length.
    pub size: u64,
    /// The layer media type (says the compression).
    pub media_type: String,
    /// The compressor (name, format version, level) that turns the stored
    /// layer into exactly these bytes; `None` for forms pulled from
    /// elsewhere, which hoist cannot make again.
    pub made_by: Option<String>,
    /// `registry/repository`s known to hold the blob.
    pub sources: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Forms {
    forms: Vec<CompressedForm>,
}

/// Sources kept per form: the most recent ones.
const MAX_SOURCES: usize = 16;

impl Store {
    fn forms_path(&self, diff_id: &Digest) -> std::path::PathBuf {
        self.root().join("cache/compressed").join(format!("{}.json", diff_id.hex()))
    }

    /// The compressed forms known for the layer with `diff_id`.
    pub fn compressed_forms(&self, diff_id: &Digest) -> Vec<CompressedForm> {
        fs::read(self.forms_path(diff_id))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Forms>(&bytes).ok())
            .map(|f| f.forms)
            .unwrap_or_default()
    }

    /// Records a compressed form of a layer (its sources merged with those
    /// known already, newest first).
    pub fn record_compressed(&self, diff_id: &Digest, form: CompressedForm) -> Result<()> {
        let path = self.forms_path(diff_id);
        let dir = path.parent().expect("in cache/compressed");
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let _guard = self.index_lock()?;
        let mut forms = self.compressed_forms(diff_id);
        match forms.iter_mut().find(|f| f.digest == form.digest) {
            Some(known) => {
                let mut sources = form.sources.clone();
                sources.extend(known.sources.iter().filter(|s| !form.sources.contains(s)).cloned());
                sources.truncate(MAX_SOURCES);
                if known.sources == sources && (known.made_by.is_some() || form.made_by.is_none()) {
                    return Ok(());
                }
                known.sources = sources;
                if form.made_by.is_some() {
                    known.made_by = form.made_by;
                }
            }
            None => forms.push(form),
        }
        let bytes = serde_json::to_vec(&Forms { forms }).expect("forms serialise");
        self.write_atomically(&path, &bytes)
    }

    /// Names `image` by `reference` (`name@sha256:…`), the digest of the
    /// manifest a registry holds for it.
    pub fn add_repo_digest(&self, image: &Image, reference: &Reference) -> Result<()> {
        if reference.digest.is_none() || reference.tag.is_some() {
            return Err(StoreError::Conflict(format!("{reference} is not a name@digest reference")));
        }
        let entries = self.entries()?;
        let descriptor = entries
            .iter()
            .find(|e| descriptor_digest(&e.manifest).is_ok_and(|d| d == image.manifest_digest))
            .map(|e| e.manifest.clone())
            .ok_or_else(|| StoreError::NoSuchImage(image.id().to_string()))?;
        self.update_index(|entries| {
            entries.retain(|e| e.name.as_ref() != Some(reference));
            entries.push(IndexEntry { name: Some(reference.clone()), manifest: descriptor });
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(digest: &str, sources: &[&str]) -> CompressedForm {
        CompressedForm {
            digest: digest.into(),
            size: 10,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            made_by: None,
            sources: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn forms_merge_their_sources_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let diff_id = Digest::sha256(b"layer");
        assert!(store.compressed_forms(&diff_id).is_empty());
        store.record_compressed(&diff_id, form("sha256:aa", &["r/a"])).unwrap();
        store.record_compressed(&diff_id, form("sha256:aa", &["r/b"])).unwrap();
        store.record_compressed(&diff_id, form("sha256:bb", &["q/c"])).unwrap();
        let forms = store.compressed_forms(&diff_id);
        assert_eq!(forms.len(), 2);
        assert_eq!(forms[0].sources, vec!["r/b", "r/a"]);
        let mut ours = form("sha256:aa", &["r/a"]);
        ours.made_by = Some("hoist-gzip-1-6".into());
        store.record_compressed(&diff_id, ours).unwrap();
        assert_eq!(store.compressed_forms(&diff_id)[0].made_by.as_deref(), Some("hoist-gzip-1-6"));
    }
}
