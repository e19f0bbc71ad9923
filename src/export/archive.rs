//! Image archives: `hoist save` and `hoist load`.
//!
//! - [`save`]: what `docker save` writes since Docker 25, streamed: a
//!   docker-archive (`manifest.json`, `repositories`) that is at the same time
//!   an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`), with
//!   uncompressed layers.
//! - [`load`]: docker-archives (old layout with `<id>/layer.tar`, new layout
//!   with blobs) and OCI archives (skopeo, buildah), compressed layers
//!   included.
//! - [`ArchiveError`]: why an archive was refused or could not be written.
//!
//! Loading stages every file of the archive in one pass, verifies every
//! digest and every layer tar, and only then commits blobs and tags: a bad
//! archive leaves the store exactly as it was.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};

use crate::image::config::{ImageConfig, host_architecture};
use crate::image::reference::Reference;
use crate::layer::Digest;
use crate::layer::check::TarProblem;
use crate::store::{CONTAINERD_NAME, Image, REF_NAME, StagedBlob, Store, StoreError, descriptor_digest};

/// JSON documents in an archive larger than this are refused.
const MAX_JSON: u64 = 16 << 20;

/// Why an archive was refused, or could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the archive stream failed.
    #[error("reading the archive failed: {0}")]
    Read(io::Error),
    /// Writing the archive stream failed.
    #[error("writing the archive failed: {0}")]
    Write(io::Error),
    /// An entry with an absolute or escaping path or link, or that is not a
    /// file, directory or link.
    #[error("archive entry {entry:?} is refused: {reason}")]
    Hostile {
        /// The entry's name as the archive spells it.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry with fewer bytes than its header announces.
    #[error("the archive is truncated: entry {entry:?} has {got} of its {expected} bytes")]
    Truncated {
        /// The entry's name as the archive spells it.
        entry: String,
        /// Bytes read.
        got: u64,
        /// Bytes the header announces.
        expected: u64,
    },
    /// Neither `manifest.json` nor `index.json`; the text names what is
    /// missing.
    #[error("the archive has no {0:?}; it is neither a docker-archive nor an OCI archive")]
    UnknownFormat(String),
    /// A file that the archive's own documents name but that it lacks.
    #[error("the archive names {path:?}, which it does not contain")]
    Missing {
        /// The path as named, before links are followed.
        path: String,
    },
    /// A document or a name in it that cannot be read or used.
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// What was read: a path in the archive, `image`, `descriptor`, a
        /// `RepoTags` entry.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Content whose digest is not the one the archive gives for it.
    #[error(
        "{what} has digest {actual}, but the archive says {expected}; the archive is damaged or was tampered with"
    )]
    DigestMismatch {
        /// The config, layer or blob checked.
        what: String,
        /// The digest the archive gives (`sha256:<hex>`).
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// A layer that is not a tar hoist accepts.
    #[error("layer {layer:?} is refused: {problem}")]
    Layer {
        /// The layer's path in the archive.
        layer: String,
        /// What is wrong with it.
        problem: TarProblem,
    },
}

/// An image `load` added to the store.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The image ID: the digest of its config.
    pub id: Digest,
    /// The names it was tagged with; empty when the archive gave none.
    pub names: Vec<Reference>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// The files of an archive, staged.
struct Staged {
    files: HashMap<String, StagedBlob>,
    links: HashMap<String, String>,
    committed: HashMap<String, (Digest, u64)>,
}

impl Staged {
    /// The archive path a path resolves to through the archive's own links.
    fn resolve(&self, path: &str) -> Result<String, ArchiveError> {
        let mut path = clean(path).ok_or_else(|| ArchiveError::Missing { path: path.to_string() })?;
        for _ in 0..16 {
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => return Ok(path),
            }
        }
        Err(ArchiveError::Invalid { what: path, reason: "too many levels of links".into() })
    }

    fn file(&self, path: &str) -> Result<(String, &StagedBlob), ArchiveError> {
        let resolved = self.resolve(path)?;
        match self.files.get(&resolved) {
            Some(file) => Ok((resolved, file)),
            None => Err(ArchiveError::Missing { path: path.to_string() }),
        }
    }

    fn json(&self, path: &str) -> Result<Vec<u8>, ArchiveError> {
        let (_, file) = self.file(path)?;
        Ok(file.read_to_vec(MAX_JSON)?)
    }
}

/// What will be committed for one image.
struct Planned {
    config: Vec<u8>,
    layers: Vec<String>,
    names: Vec<Reference>,
}

/// Loads every image of an archive.
pub fn load(store: &Store, input: impl Read) -> Result<Vec<LoadedImage>, ArchiveError> {
    let _lock = store.lock(false)?;
    let mut staged = Staged { files: HashMap::new(), links: HashMap::new(), committed: HashMap::new() };
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean(&raw_name).ok_or_else(|| ArchiveError::Hostile {
            entry: raw_name.clone(),
            reason: "absolute paths and `..` are not allowed in an image archive".into(),
        })?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {}
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let expected = entry.size();
                let file = store.stage(&mut entry)?;
                if file.raw_size != expected {
                    return Err(ArchiveError::Truncated { entry: raw_name, got: file.raw_size, expected });
                }
                staged.files.insert(name, file);
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let joined = if kind == tar::EntryType::Symlink {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    if target.starts_with('/') { target.clone() } else { format!("{dir}/{target}") }
                } else {
                    target.clone()
                };
                let resolved = clean(&joined).filter(|_| !target.starts_with('/')).ok_or_else(|| {
                    ArchiveError::Hostile {
                        entry: raw_name.clone(),
                        reason: format!("its link target {target:?} points outside the archive"),
                    }
                })?;
                staged.links.insert(name, resolved);
            }
            other => {
                return Err(ArchiveError::Hostile {
                    entry: raw_name,
                    reason: format!(
                        "an image archive holds only files, directories and links, not {other:?}"
                    ),
                });
            }
        }
    }

    let plans = if staged.files.contains_key("manifest.json") {
        plan_docker_archive(&staged)?
    } else if staged.files.contains_key("index.json") {
        plan_oci_archive(&staged)?
    } else {
        return Err(ArchiveError::UnknownFormat("manifest.json or index.json".into()));
    };

    // Everything is verified: commit.
    let mut loaded = Vec::with_capacity(plans.len());
    for plan in plans {
        let mut layers = Vec::with_capacity(plan.layers.len());
        for path in &plan.layers {
            if let Some(done) = staged.committed.get(path) {
                layers.push(*done);
                continue;
            }
            let file = staged.files.remove(path).expect("planned layers are staged");
            let size = file.size;
            let digest = file.commit()?;
            staged.committed.insert(path.clone(), (digest, size));
            layers.push((digest, size));
        }
        let image = store.commit_image(&plan.config, &layers, &plan.names)?;
        loaded.push(LoadedImage { id: image.id(), names: plan.names });
    }
    Ok(loaded)
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, ArchiveError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ArchiveError::Invalid { what: what.to_string(), reason: e.to_string() })
}

/// Checks layers against the config's diffIDs; returns the layer paths.
fn check_layers(
    staged: &Staged,
    config: &ImageConfig,
    layers: &[String],
) -> Result<Vec<String>, ArchiveError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != layers.len() {
        return Err(ArchiveError::Invalid {
            what: "image".into(),
            reason: format!("the config lists {} layers but the manifest {}", diff_ids.len(), layers.len()),
        });
    }
    let mut out = Vec::with_capacity(layers.len());
    for (path, diff_id) in layers.iter().zip(diff_ids) {
        let (resolved, file) = staged.file(path)?;
        if file.digest.to_string() != *diff_id {
            return Err(ArchiveError::DigestMismatch {
                what: format!("layer {path}"),
                expected: diff_id.clone(),
                actual: file.digest.to_string(),
            });
        }
        if let Err(problem) = &file.tar {
            return Err(ArchiveError::Layer { layer: path.clone(), problem: problem.clone() });
        }
        out.push(resolved);
    }
    Ok(out)
}

fn plan_docker_archive(staged: &Staged) -> Result<Vec<Planned>, ArchiveError> {
    let manifests: Vec<ArchiveManifest> = parse_json("manifest.json", &staged.json("manifest.json")?)?;
    let mut plans = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let config_bytes = staged.json(&manifest.config)?;
        // New-style archives name the config by its digest: check it.
        if let Some(hex) = manifest.config.strip_prefix("blobs/sha256/") {
            let actual = Digest::sha256(&config_bytes);
            if actual.hex() != hex {
                return Err(ArchiveError::DigestMismatch {
                    what: format!("config {}", manifest.config),
                    expected: format!("sha256:{hex}"),
                    actual: actual.to_string(),
                });
            }
        }
        let config: ImageConfig = parse_json(&manifest.config, &config_bytes)?;
        let layers = check_layers(staged, &config, &manifest.layers)?;
        let mut names = Vec::new();
        for tag in manifest.repo_tags.unwrap_or_default() {
            let reference = Reference::parse(&tag).map_err(|e| ArchiveError::Invalid {
                what: format!("RepoTags entry {tag:?}"),
                reason: e.to_string(),
            })?;
            names.push(reference);
        }
        plans.push(Planned { config: config_bytes, layers, names });
    }
    Ok(plans)
}

fn blob_path(descriptor: &Descriptor) -> Result<String, ArchiveError> {
    let digest = descriptor.digest().to_string();
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", ""));
    if algorithm != "sha256" || hex.len() != 64 {
        return Err(ArchiveError::Invalid {
            what: "descriptor".into(),
            reason: format!("unsupported digest {digest}"),
        });
    }
    Ok(format!("blobs/{algorithm}/{hex}"))
}

/// A blob named by a descriptor, checked against the descriptor's digest.
fn checked_blob<'a>(
    staged: &'a Staged,
    descriptor: &Descriptor,
) -> Result<(String, &'a StagedBlob), ArchiveError> {
    let path = blob_path(descriptor)?;
    let (resolved, file) = staged.file(&path)?;
    let expected = descriptor_digest(descriptor)?;
    if file.raw_digest != expected {
        return Err(ArchiveError::DigestMismatch {
            what: path,
            expected: expected.to_string(),
            actual: file.raw_digest.to_string(),
        });
    }
    Ok((resolved, file))
}

fn plan_oci_archive(staged: &Staged) -> Result<Vec<Planned>, ArchiveError> {
    let index: ImageIndex = parse_json("index.json", &staged.json("index.json")?)?;
    let mut plans = Vec::new();
    for descriptor in index.manifests() {
        let manifest_descriptor = match descriptor.media_type() {
            MediaType::ImageIndex => pick_platform(staged, descriptor)?,
            MediaType::Other(other)
                if other == "application/vnd.docker.distribution.manifest.list.v2+json" =>
            {
                pick_platform(staged, descriptor)?
            }
            _ => descriptor.clone(),
        };
        let (path, file) = checked_blob(staged, &manifest_descriptor)?;
        let manifest: ImageManifest = parse_json(&path, &file.read_to_vec(MAX_JSON)?)?;
        let (config_path, config_file) = checked_blob(staged, manifest.config())?;
        let config_bytes = config_file.read_to_vec(MAX_JSON)?;
        let config: ImageConfig = parse_json(&config_path, &config_bytes)?;
        let mut layer_paths = Vec::with_capacity(manifest.layers().len());
        for layer in manifest.layers() {
            let (resolved, _) = checked_blob(staged, layer)?;
            layer_paths.push(resolved);
        }
        let layers = check_layers(staged, &config, &layer_paths)?;
        let names = oci_names(descriptor);
        plans.push(Planned { config: config_bytes, layers, names });
    }
    Ok(plans)
}

/// Names from the index annotations: containerd's full name, else an OCI
/// ref name that is a whole reference (a bare tag such as `latest` names
/// nothing on its own).
fn oci_names(descriptor: &Descriptor) -> Vec<Reference> {
    let Some(annotations) = descriptor.annotations() else { return Vec::new() };
    let name = annotations
        .get(CONTAINERD_NAME)
        .or_else(|| annotations.get(REF_NAME).filter(|n| n.contains([':', '/', '@'])));
    name.and_then(|n| Reference::parse(n).ok()).into_iter().collect()
}

/// The manifest for this machine's platform from a multi-platform index.
fn pick_platform(staged: &Staged, descriptor: &Descriptor) -> Result<Descriptor, ArchiveError> {
    let (path, file) = checked_blob(staged, descriptor)?;
    let index: ImageIndex = parse_json(&path, &file.read_to_vec(MAX_JSON)?)?;
    let arch = host_architecture();
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform()
                .as_ref()
                .is_some_and(|p| p.architecture().to_string() == arch && p.os().to_string() == "linux")
        })
        .cloned()
        .ok_or_else(|| ArchiveError::Invalid {
            what: path,
            reason: format!("the index has no image for linux/{arch}"),
        })
}

/// An archive member's name made relative and confined to the archive, or
/// `None` if it is absolute or escapes.
fn clean(path: &str) -> Option<String> {
    let confined = crate::paths::confined_relative(path.as_bytes()).ok()?;
    String::from_utf8(confined).ok()
}

/// An image to save and the names to record for it.
pub struct SaveItem {
    /// The image, as read from the store.
    pub image: Image,
    /// Names recorded in `manifest.json`, `repositories` and `index.json`;
    /// may be empty.
    pub names: Vec<Reference>,
}

/// Writes a docker-archive that is also an OCI layout.
pub fn save(store: &Store, items: &[SaveItem], out: impl Write) -> Result<(), ArchiveError> {
    let mut builder = tar::Builder::new(out);
    let w = ArchiveError::Write;
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        builder.append_data(&mut header, dir, io::empty()).map_err(w)?;
    }
    let mut written = std::collections::HashSet::new();
    let mut manifest_json = Vec::new();
    let mut index_entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in items {
        let image = &item.image;
        let mut blobs: Vec<Digest> = image.layers().into_iter().map(|(d, _)| d).collect();
        blobs.push(image.config_digest);
        blobs.push(image.manifest_digest);
        for digest in blobs {
            if !written.insert(digest) {
                continue;
            }
            let file = store.open_blob(&digest)?;
            let size = file.metadata().map_err(w)?.len();
            let mut header = header(tar::EntryType::Regular, 0o644, size);
            builder.append_data(&mut header, format!("blobs/sha256/{}", digest.hex()), file).map_err(w)?;
        }
        let top_layer = image.layers().last().map(|(d, _)| d.hex());
        for name in &item.names {
            if let (Some(tag), Some(top)) = (&name.tag, &top_layer) {
                repositories.entry(name.familiar_name()).or_default().insert(tag.clone(), top.clone());
            }
        }
        manifest_json.push(ArchiveManifest {
            config: format!("blobs/sha256/{}", image.config_digest.hex()),
            repo_tags: (!item.names.is_empty()).then(|| item.names.iter().map(Reference::familiar).collect()),
            layers: image.layers().iter().map(|(d, _)| format!("blobs/sha256/{}", d.hex())).collect(),
        });
        let base = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest_digest.to_string(),
            "size": image.manifest_size,
        });
        if item.names.is_empty() {
            index_entries.push(base.clone());
        }
        for name in &item.names {
            let mut entry = base.clone();
            entry["annotations"] = serde_json::json!({
                CONTAINERD_NAME: name.to_string(),
                REF_NAME: name.tag.clone().unwrap_or_default(),
            });
            index_entries.push(entry);
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index_entries,
    });
    let documents: [(&str, Vec<u8>); 4] = [
        ("index.json", serde_json::to_vec(&index).expect("json")),
        ("manifest.json", serde_json::to_vec(&manifest_json).expect("json")),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("repositories", serde_json::to_vec(&repositories).expect("json")),
    ];
    for (name, bytes) in documents {
        let mut header = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        builder.append_data(&mut header, name, bytes.as_slice()).map_err(w)?;
    }
    builder.into_inner().map_err(w)?.flush().map_err(w)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}
