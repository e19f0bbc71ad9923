//! Images in the store: resolving, adding, tagging and removing.
//!
//! - [`Image`], [`ImageSummary`]: an image read from the store, alone or with
//!   its names.
//! - [`Store::resolve`]: a name or an ID to an image.
//! - [`Store::commit_image`]: an image added from blobs already written.
//! - [`Store::tag`], [`Store::remove`]: tagging, and removing with garbage
//!   collection of the blobs no other image uses ([`RemovedImage`]).

use std::collections::BTreeSet;
use std::str::FromStr;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, Digest as OciDigest, ImageManifest, ImageManifestBuilder, MediaType,
    PlatformBuilder,
};

use super::{IndexEntry, Result, Store, StoreError, descriptor_digest};
use crate::image::config::ImageConfig;
use crate::image::reference::Reference;
use crate::layer::Digest;

/// An image read from the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The sha256 of the manifest blob.
    pub manifest_digest: Digest,
    /// The manifest blob's size in bytes.
    pub manifest_size: u64,
    /// The OCI manifest: the config and layer descriptors.
    pub manifest: ImageManifest,
    /// The image ID: the sha256 of the config bytes.
    pub config_digest: Digest,
    /// The config exactly as stored, which the image ID is the digest of.
    pub config_bytes: Vec<u8>,
    /// The config, parsed.
    pub config: ImageConfig,
}

impl Image {
    /// The image ID: the sha256 of the config bytes.
    pub fn id(&self) -> Digest {
        self.config_digest
    }

    /// Layer blobs, bottom first.
    pub fn layers(&self) -> Vec<(Digest, u64)> {
        self.manifest
            .layers()
            .iter()
            .filter_map(|layer| Some((descriptor_digest(layer).ok()?, layer.size())))
            .collect()
    }

    /// Every blob the image needs: manifest, config and layers.
    pub fn blob_digests(&self) -> Vec<Digest> {
        let mut out = vec![self.manifest_digest, self.config_digest];
        out.extend(self.layers().into_iter().map(|(d, _)| d));
        out
    }

    /// Unpacked size: the store keeps layers uncompressed, so the blob sizes.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum()
    }
}

/// An image with every name it is tagged with.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// Every name the image is tagged with, in `index.json` order; empty for
    /// an untagged image.
    pub names: Vec<Reference>,
    /// The image.
    pub image: Image,
}

/// What `remove` did, in `docker rmi`'s terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovedImage {
    /// The name no longer points at the image.
    Untagged(Reference),
    /// The image with this ID is gone, and so are the blobs no other image
    /// uses.
    Deleted(Digest),
}

fn oci_digest(digest: &Digest) -> OciDigest {
    OciDigest::from_str(&digest.to_string()).expect("sha256 digests are valid OCI digests")
}

fn invalid(what: &str, reason: impl ToString) -> StoreError {
    StoreError::Invalid { what: what.to_string(), reason: reason.to_string() }
}

impl Store {
    /// Reads the image a manifest blob describes.
    pub fn image_from_manifest(&self, manifest_digest: &Digest) -> Result<Image> {
        let manifest_bytes = self.read_blob(manifest_digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| invalid(&format!("manifest {manifest_digest}"), e))?;
        let config_digest = descriptor_digest(manifest.config())?;
        let config_bytes = self.read_blob(&config_digest)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(&format!("image config {config_digest}"), e))?;
        Ok(Image {
            manifest_digest: *manifest_digest,
            manifest_size: manifest_bytes.len() as u64,
            manifest,
            config_digest,
            config_bytes,
            config,
        })
    }

    /// Every image, with its names, in `index.json` order.
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        let mut out: Vec<ImageSummary> = Vec::new();
        for entry in self.entries()? {
            let digest = descriptor_digest(&entry.manifest)?;
            let position = out.iter().position(|s| s.image.manifest_digest == digest);
            let summary = match position {
                Some(i) => &mut out[i],
                None => {
                    let image = self.image_from_manifest(&digest)?;
                    out.push(ImageSummary { names: Vec::new(), image });
                    out.last_mut().expect("just pushed")
                }
            };
            if let Some(name) = entry.name {
                summary.names.push(name);
            }
        }
        Ok(out)
    }

    /// Finds an image by name (`app`, `app:1`, `localhost:5000/a@sha256:…`)
    /// or by ID (`sha256:<hex>`, the hex, or a unique prefix of it).
    pub fn resolve(&self, text: &str) -> Result<ImageSummary> {
        let images = self.images()?;
        if let Ok(reference) = Reference::parse(text) {
            if let Some(found) = images.iter().find(|s| s.names.contains(&reference)) {
                return Ok(found.clone());
            }
            if let Some(digest) = &reference.digest {
                let found = images.iter().find(|s| {
                    s.image.manifest_digest.to_string() == *digest
                        && s.names.iter().any(|n| n.name() == reference.name())
                });
                if let Some(found) = found {
                    return Ok(found.clone());
                }
            }
        }
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let mut ids: Vec<&ImageSummary> =
                images.iter().filter(|s| s.image.id().hex().starts_with(&hex)).collect();
            ids.dedup_by_key(|s| s.image.id());
            match ids.as_slice() {
                [one] => {
                    // Several manifests can share one config; gather every name.
                    let mut found = (*one).clone();
                    found.names = images
                        .iter()
                        .filter(|s| s.image.id() == one.image.id())
                        .flat_map(|s| s.names.clone())
                        .collect();
                    return Ok(found);
                }
                [] => {}
                _ => {
                    return Err(StoreError::Conflict(format!(
                        "image ID prefix {text} is ambiguous: it matches {} images; give more digits",
                        ids.len()
                    )));
                }
            }
        }
        Err(StoreError::NoSuchImage(text.to_string()))
    }

    /// Commits an image: the config bytes as a blob, an OCI manifest over
    /// them and the given layers (uncompressed, already in the store), and
    /// an `index.json` entry per name (one untagged entry without names).
    /// The image ID is the digest of `config_bytes` exactly as given.
    pub fn commit_image(
        &self,
        config_bytes: &[u8],
        layers: &[(Digest, u64)],
        names: &[Reference],
    ) -> Result<Image> {
        let config: ImageConfig =
            serde_json::from_slice(config_bytes).map_err(|e| invalid("image config", e))?;
        let config_digest = self.put_blob(config_bytes)?;
        let config_descriptor =
            Descriptor::new(MediaType::ImageConfig, config_bytes.len() as u64, oci_digest(&config_digest));
        let layer_descriptors: Vec<Descriptor> = layers
            .iter()
            .map(|(digest, size)| {
                if !self.has_blob(digest) {
                    return Err(StoreError::MissingBlob { digest: *digest, root: self.root.clone() });
                }
                Ok(Descriptor::new(MediaType::ImageLayer, *size, oci_digest(digest)))
            })
            .collect::<Result<_>>()?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_descriptor)
            .layers(layer_descriptors)
            .build()
            .map_err(|e| invalid("manifest", e))?;
        let bytes = serde_json::to_vec(&manifest).map_err(|e| invalid("manifest", e))?;
        let digest = self.put_blob(&bytes)?;
        let platform = PlatformBuilder::default()
            .architecture(config.architecture.as_str())
            .os(config.os.as_str())
            .build()
            .map_err(|e| invalid("platform", e))?;
        let descriptor = DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .size(bytes.len() as u64)
            .digest(oci_digest(&digest))
            .platform(platform)
            .build()
            .map_err(|e| invalid("manifest descriptor", e))?;
        self.add_image(&descriptor, names)
    }

    /// Records an image whose blobs are all in the store, under `names`
    /// (moved from any image that had them) or untagged when `names` is
    /// empty. An image that loses its last name stays, untagged, as Docker
    /// keeps a dangling image.
    fn add_image(&self, manifest: &Descriptor, names: &[Reference]) -> Result<Image> {
        let digest = descriptor_digest(manifest)?;
        let image = self.image_from_manifest(&digest)?;
        for (layer, _) in image.layers() {
            if !self.has_blob(&layer) {
                return Err(StoreError::MissingBlob { digest: layer, root: self.root.clone() });
            }
        }
        self.update_index(|entries| {
            for name in names {
                retag(entries, name, manifest, &digest)?;
            }
            if names.is_empty() && !entries.iter().any(|e| same_manifest(e, &digest)) {
                entries.push(IndexEntry { name: None, manifest: manifest.clone() });
            }
            Ok(())
        })?;
        Ok(image)
    }

    /// `hoist tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let _lock = self.lock(false)?;
        let found = self.resolve(source)?;
        let descriptor = self
            .entries()?
            .into_iter()
            .find(|e| same_manifest(e, &found.image.manifest_digest))
            .map(|e| e.manifest)
            .ok_or_else(|| StoreError::NoSuchImage(source.to_string()))?;
        self.update_index(|entries| retag(entries, target, &descriptor, &found.image.manifest_digest))
    }

    /// `hoist rmi`: untags a name, or removes an image by ID (refused when
    /// it has several names, unless `force`). Blobs that no remaining image
    /// uses are deleted.
    pub fn remove(&self, text: &str, force: bool) -> Result<Vec<RemovedImage>> {
        let lock = self.lock(true)?;
        let found = self.resolve(text)?;
        let by_name = Reference::parse(text).ok().filter(|r| found.names.contains(r));
        let mut removed = Vec::new();
        let id = found.image.id();
        let manifests: BTreeSet<Digest> = self
            .images()?
            .into_iter()
            .filter(|s| s.image.id() == id)
            .map(|s| s.image.manifest_digest)
            .collect();
        let tags = found.names.iter().filter(|n| n.tag.is_some()).count();
        if by_name.is_none() && tags > 1 && !force {
            return Err(StoreError::Conflict(format!(
                "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                &id.hex()[..12]
            )));
        }
        let delete_image = self.update_index(|entries| {
            match &by_name {
                Some(name) => {
                    entries.retain(|e| e.name.as_ref() != Some(name));
                    removed.push(RemovedImage::Untagged(name.clone()));
                }
                None => {
                    for name in &found.names {
                        removed.push(RemovedImage::Untagged(name.clone()));
                    }
                    entries.retain(|e| !manifests.iter().any(|m| same_manifest(e, m)));
                }
            }
            // The image goes once no tag names it any more; its repo
            // digests (name@sha256:…) go with it, as Docker drops them.
            let ours = |e: &IndexEntry| manifests.iter().any(|m| same_manifest(e, m));
            let named = entries.iter().any(|e| ours(e) && e.name.as_ref().is_some_and(|n| n.tag.is_some()));
            if !named && by_name.as_ref().is_none_or(|n| n.tag.is_some()) {
                for entry in entries.iter().filter(|e| ours(e)) {
                    if let Some(name) = &entry.name {
                        removed.push(RemovedImage::Untagged(name.clone()));
                    }
                }
                entries.retain(|e| !ours(e));
            }
            let named = named || entries.iter().any(|e| ours(e) && e.name.is_some());
            Ok(!named)
        })?;
        if delete_image {
            let mut candidates: BTreeSet<Digest> = BTreeSet::new();
            for manifest in &manifests {
                if let Ok(image) = self.image_from_manifest(manifest) {
                    candidates.extend(image.blob_digests());
                }
            }
            self.delete_unreferenced(&candidates, &lock)?;
            removed.push(RemovedImage::Deleted(id));
        }
        Ok(removed)
    }
}

fn same_manifest(entry: &IndexEntry, digest: &Digest) -> bool {
    descriptor_digest(&entry.manifest).is_ok_and(|d| d == *digest)
}

/// Points `name` at a manifest; the manifest it pointed at before keeps an
/// untagged entry if nothing else names it.
fn retag(
    entries: &mut Vec<IndexEntry>,
    name: &Reference,
    manifest: &Descriptor,
    digest: &Digest,
) -> Result<()> {
    if name.digest.is_some() {
        return Err(StoreError::Conflict(format!("cannot tag with a digest reference: {name}")));
    }
    let previous = entries.iter().position(|e| e.name.as_ref() == Some(name));
    if let Some(i) = previous {
        let old = entries.remove(i);
        let old_digest = descriptor_digest(&old.manifest)?;
        if old_digest != *digest && !entries.iter().any(|e| same_manifest(e, &old_digest)) {
            entries.push(IndexEntry { name: None, manifest: old.manifest });
        }
    }
    entries.retain(|e| !(e.name.is_none() && same_manifest(e, digest)));
    entries.push(IndexEntry { name: Some(name.clone()), manifest: manifest.clone() });
    Ok(())
}
