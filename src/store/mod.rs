//! The local store: an OCI image layout at `$HOIST_ROOT` that `skopeo` and `umoci` read.
//!
//! - [`Store::open`]: creates or opens a root: `oci-layout`, `index.json`,
//!   `blobs/sha256/…`, plus `tmp/` for writes in progress and room for
//!   snapshots and the cache index.
//! - [`BlobWriter`], [`Store::put_blob`]: blobs, content-addressed by sha256,
//!   written as a temp file in `tmp/`, fsync, rename, fsync of the directory.
//! - [`Store::entries`]: `index.json`, one entry per tag (annotation
//!   `org.opencontainers.image.ref.name` holds the full normalised reference,
//!   so `skopeo inspect oci:$ROOT:docker.io/library/app:1` works) and one
//!   untagged entry per image with no tag; it is replaced atomically under an
//!   exclusive lock, so readers never see half a file.
//! - [`Store::lock`]: the store-wide lock: shared for anything that writes or
//!   reads images, exclusive for removing blobs, so that garbage collection
//!   never deletes what another process is writing or reading.
//! - [`Image`], [`StagedBlob`]: images in the store, and bytes from outside
//!   on their way in.

mod compressed;
mod images;
mod staging;

pub use compressed::CompressedForm;
pub use images::{Image, ImageSummary, RemovedImage};
pub use staging::StagedBlob;

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use crate::image::reference::Reference;
use crate::layer::{Digest, DigestWriter};

/// Annotation with the full reference of a tagged entry of `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The same reference, as containerd and Docker 25+ write it.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory it was on.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The root holds something other than a usable OCI layout.
    #[error("{path} is not a hoist store: {reason}")]
    NotAStore {
        /// The store's root.
        path: PathBuf,
        /// What is wrong with its `oci-layout`.
        reason: String,
    },
    /// A blob an image needs is not in the store.
    #[error("blob {digest} is missing from the store at {root}; remove the image and pull or load it again")]
    MissingBlob {
        /// The missing blob.
        digest: Digest,
        /// The store's root.
        root: PathBuf,
    },
    /// A stored blob whose content does not match the digest it is stored
    /// under.
    #[error("blob {expected} in the store holds content with digest {actual}: the store is damaged")]
    CorruptBlob {
        /// The digest it is stored under.
        expected: Digest,
        /// The digest of its content.
        actual: Digest,
    },
    /// A blob written with other content than the caller expected; nothing
    /// was committed.
    #[error("content written has digest {actual}, but {expected} was expected")]
    DigestMismatch {
        /// The digest the caller expected.
        expected: Digest,
        /// The digest of what was written.
        actual: Digest,
    },
    /// A document or an input that cannot be read or used.
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// What was read: a path, `index.json`, `manifest`, `input`, …
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No image has this name or ID; holds the text looked up.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// A request refused as it stands (an ambiguous ID prefix, removing an
    /// image with several names, tagging with a digest); the text says why.
    #[error("{0}")]
    Conflict(String),
}

/// A result whose error is a [`StoreError`] unless said otherwise.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

/// An entry of `index.json`: a manifest, and the tag it is known by.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The full reference the entry is tagged with; `None` for an untagged
    /// entry, or one whose annotation does not parse as a reference.
    pub name: Option<Reference>,
    /// The descriptor of the image's manifest, as `index.json` holds it.
    pub manifest: Descriptor,
}

/// A store at a root directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The store-wide lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// `$HOIST_ROOT`, else `/var/lib/hoist` for root, else
    /// `$XDG_DATA_HOME/hoist`, else `~/.local/share/hoist`.
    pub fn default_root() -> PathBuf {
        if let Some(root) = std::env::var_os("HOIST_ROOT").filter(|r| !r.is_empty()) {
            return PathBuf::from(root);
        }
        if !crate::idmap::rootless() {
            return PathBuf::from("/var/lib/hoist");
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(data).join("hoist");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
        home.join(".local/share/hoist")
    }

    /// Opens the store at `root`, creating an empty layout if there is none.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let store = Store { root: root.into() };
        for dir in [store.root.clone(), store.root.join("blobs/sha256"), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        }
        let layout = store.root.join("oci-layout");
        match fs::read(&layout) {
            Ok(bytes) => {
                let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError::NotAStore { path: store.root.clone(), reason: format!("oci-layout: {e}") }
                })?;
                if value.get("imageLayoutVersion").and_then(|v| v.as_str()).is_none() {
                    return Err(StoreError::NotAStore {
                        path: store.root.clone(),
                        reason: "oci-layout has no imageLayoutVersion".into(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                store.write_atomically(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
            Err(e) => return Err(io_error(&layout)(e)),
        }
        let index = store.root.join("index.json");
        if !index.exists() {
            let _guard = store.index_lock()?;
            if !index.exists() {
                store.write_index(&[])?;
            }
        }
        store.clean_stale_temp_files();
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether a blob is in the store (its content is not checked).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob { digest: *digest, root: self.root.clone() },
            _ => io_error(self.blob_path(digest))(e),
        })
    }

    /// Reads a small blob (a manifest or a config) whole, checking its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?.read_to_end(&mut bytes).map_err(io_error(self.blob_path(digest)))?;
        let actual = Digest::sha256(&bytes);
        if actual != *digest {
            return Err(StoreError::CorruptBlob { expected: *digest, actual });
        }
        Ok(bytes)
    }

    /// Stores bytes as a blob and returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut writer = self.blob_writer()?;
        writer.write_all(bytes).map_err(io_error(writer.path.clone()))?;
        writer.commit(Some(digest))
    }

    /// A writer for a new blob; nothing appears in `blobs/` until `commit`.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let (path, file) = self.temp_file("blob")?;
        Ok(BlobWriter { store: self.clone(), path, inner: Some(DigestWriter::new(file)) })
    }

    /// A new temp file in `tmp/`, removed on drop of whoever owns the path.
    pub(crate) fn temp_file(&self, kind: &str) -> Result<(PathBuf, File)> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp_dir().join(format!("{kind}-{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok((path, file))
    }

    /// Temp files left by processes that no longer run (killed mid-write).
    fn clean_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) =
                name.to_str().and_then(|n| n.split('-').nth(1)).and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let alive = Path::new("/proc").join(pid.to_string()).exists();
            if !alive {
                let path = entry.path();
                let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            }
        }
    }

    /// Writes a file in the store by temp file, fsync, rename and fsync of
    /// its directory.
    pub(crate) fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let (temp, mut file) = self.temp_file("write")?;
        let result = file
            .write_all(bytes)
            .and_then(|_| file.sync_all())
            .and_then(|_| fs::rename(&temp, path))
            .map_err(io_error(path));
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result?;
        sync_dir(path.parent().unwrap_or(&self.root))
    }

    /// Takes the store-wide lock: `exclusive` only to delete blobs.
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        let path = self.root.join("store.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        if exclusive { file.lock() } else { file.lock_shared() }.map_err(io_error(&path))?;
        Ok(StoreLock { _file: file })
    }

    /// Serialises read-modify-write cycles of `index.json`.
    fn index_lock(&self) -> Result<StoreLock> {
        let path = self.root.join("index.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        file.lock().map_err(io_error(&path))?;
        Ok(StoreLock { _file: file })
    }

    /// Every entry of `index.json`.
    pub fn entries(&self) -> Result<Vec<IndexEntry>> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Invalid { what: path.display().to_string(), reason: e.to_string() })?;
        Ok(index
            .manifests()
            .iter()
            .map(|manifest| IndexEntry {
                name: manifest
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(|name| Reference::parse(name).ok()),
                manifest: manifest.clone(),
            })
            .collect())
    }

    fn write_index(&self, entries: &[IndexEntry]) -> Result<()> {
        let manifests: Vec<Descriptor> = entries
            .iter()
            .map(|entry| {
                let mut manifest = entry.manifest.clone();
                let mut annotations = HashMap::new();
                if let Some(name) = &entry.name {
                    annotations.insert(REF_NAME.to_string(), name.to_string());
                    annotations.insert(CONTAINERD_NAME.to_string(), name.to_string());
                }
                manifest.set_annotations((!annotations.is_empty()).then_some(annotations));
                manifest
            })
            .collect();
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| StoreError::Invalid { what: "index.json".into(), reason: e.to_string() })?;
        let bytes = serde_json::to_vec(&index)
            .map_err(|e| StoreError::Invalid { what: "index.json".into(), reason: e.to_string() })?;
        self.write_atomically(&self.root.join("index.json"), &bytes)
    }

    /// Changes `index.json` under its lock.
    pub(crate) fn update_index<T>(
        &self,
        change: impl FnOnce(&mut Vec<IndexEntry>) -> Result<T>,
    ) -> Result<T> {
        let _guard = self.index_lock()?;
        let mut entries = self.entries()?;
        let before = entries.clone();
        let out = change(&mut entries)?;
        // A rebuild that tags what the name already has changes nothing:
        // no write, no fsync.
        if entries != before {
            self.write_index(&entries)?;
        }
        Ok(out)
    }

    /// Deletes the given blobs unless an entry of `index.json` still reaches
    /// them. The caller holds the exclusive store lock.
    pub(crate) fn delete_unreferenced(
        &self,
        candidates: &BTreeSet<Digest>,
        _lock: &StoreLock,
    ) -> Result<u64> {
        let mut reachable = BTreeSet::new();
        for entry in self.entries()? {
            let digest = descriptor_digest(&entry.manifest)?;
            reachable.insert(digest);
            if let Ok(image) = self.image_from_manifest(&digest) {
                reachable.extend(image.blob_digests());
            }
        }
        let mut freed = 0;
        for digest in candidates.difference(&reachable) {
            let path = self.blob_path(digest);
            if let Ok(meta) = fs::metadata(&path) {
                fs::remove_file(&path).map_err(io_error(&path))?;
                freed += meta.len();
            }
        }
        sync_dir(&self.root.join("blobs/sha256"))?;
        Ok(freed)
    }
}

/// The sha256 digest a descriptor names.
pub fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest> {
    descriptor.digest().to_string().parse().map_err(|_| StoreError::Invalid {
        what: "descriptor".into(),
        reason: format!("unsupported digest {}", descriptor.digest()),
    })
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

/// A blob being written. Dropped without `commit`, it leaves nothing.
pub struct BlobWriter {
    store: Store,
    path: PathBuf,
    inner: Option<DigestWriter<File>>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.byte_count())
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        self.inner.as_ref().map(|w| w.digest()).unwrap_or_else(|| Digest::sha256(b""))
    }

    /// Makes the blob durable and visible under its digest; fails (and
    /// leaves nothing) if `expected` is given and does not match.
    pub fn commit(mut self, expected: Option<Digest>) -> Result<Digest> {
        let writer = self.inner.take().expect("blob writer used after commit");
        let digest = writer.digest();
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(StoreError::DigestMismatch { expected, actual: digest });
        }
        let file = writer.into_inner();
        file.sync_all().map_err(io_error(&self.path))?;
        drop(file);
        let target = self.store.blob_path(&digest);
        if target.exists() {
            fs::remove_file(&self.path).map_err(io_error(&self.path))?;
            return Ok(digest);
        }
        fs::rename(&self.path, &target).map_err(io_error(&target))?;
        sync_dir(target.parent().expect("blob has a directory"))?;
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("blob writer used after commit").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("blob writer used after commit").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}
