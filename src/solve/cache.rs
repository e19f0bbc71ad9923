//! The build cache index: one small JSON file per step cache key under
//! `<store>/cache/steps/`, naming the layer the step produced (a blob in
//! the store) and when it was made. Written atomically, so a crash leaves
//! either the old record or the new one; a record whose blob has gone (an
//! `rmi` collected it) is a miss, never an error.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::layer::Digest;
use crate::store::{Store, StoreError};

/// What a cached step left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer, if the step made one (RUN, COPY, ADD, WORKDIR).
    pub layer: Option<CachedLayer>,
    /// The history `created` time of the first build that made it.
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The blob in the store (layers are stored uncompressed, so this is
    /// also the diff ID).
    pub digest: String,
    pub size: u64,
}

/// The index in a store.
#[derive(Debug, Clone)]
pub struct CacheIndex {
    store: Store,
    dir: PathBuf,
}

impl CacheIndex {
    pub fn open(store: &Store) -> Result<CacheIndex, StoreError> {
        let dir = store.root().join("cache/steps");
        fs::create_dir_all(&dir).map_err(crate::store::io_error(&dir))?;
        Ok(CacheIndex { store: store.clone(), dir })
    }

    fn path(&self, key: &blake3::Hash) -> PathBuf {
        self.dir.join(format!("{}.json", key.to_hex()))
    }

    /// The record for `key`, if there is one whose layer is still stored.
    pub fn get(&self, key: &blake3::Hash) -> Option<CacheRecord> {
        let bytes = fs::read(self.path(key)).ok()?;
        let record: CacheRecord = serde_json::from_slice(&bytes).ok()?;
        if let Some(layer) = &record.layer {
            let digest: Digest = layer.digest.parse().ok()?;
            if !self.store.has_blob(&digest) {
                return None;
            }
        }
        Some(record)
    }

    pub fn put(&self, key: &blake3::Hash, record: &CacheRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).expect("cache record serialises");
        self.store.write_atomically(&self.path(key), &bytes)
    }
}
