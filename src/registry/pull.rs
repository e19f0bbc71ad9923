//! Pull: a reference → an image in the store.
//!
//! - The manifest (an index is narrowed to the wanted platform) and the
//!   config are read whole, within size limits, and verified by digest.
//! - Layers the store already holds (by diff ID) are not fetched; the others
//!   are fetched three at a time, streamed through the store's staging
//!   (decompressed once, both digests computed, the tar checked) and
//!   committed only when the compressed digest and the diff ID both match.
//! - A connection that breaks mid-layer is resumed with `Range` from where
//!   it stopped (five times at most); a registry that ignores `Range` is
//!   read again from the start and the bytes already read are skipped.
//! - The image is committed last: a pull that fails or is killed leaves at
//!   most complete, verified blobs that nothing names yet.

use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ureq::http::{Method, StatusCode};

use super::transport::Request;
use super::{Client, RegistryError, Repository, read_limited, verify};
use crate::image::config::ImageConfig;
use crate::image::manifest::{Descriptor, Document, Manifest, Platform, media_type};
use crate::image::reference::Reference;
use crate::layer::{Digest, with_read_ahead};
use crate::progress::{Event, Progress};
use crate::store::{CompressedForm, Image, Store};

/// Manifests larger than this are refused (containerd's limit).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Image configs larger than this are refused.
pub const MAX_CONFIG: u64 = 16 << 20;
/// Layers fetched at once (Docker's default).
const CONCURRENT_DOWNLOADS: usize = 3;
/// Times a broken layer download is resumed.
const RESUMES: u32 = 5;

/// What a pull put in the store.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image.
    pub image: Image,
    /// The digest of the manifest the registry served for the reference
    /// (the index's, for a multi-platform image): what `RepoDigests` shows.
    pub manifest_digest: Digest,
}

/// Where progress events go and which ids they use.
pub(crate) struct Reporter<'a> {
    pub progress: &'a dyn Progress,
    pub first_id: usize,
}

/// Pulls `reference` for `platform` into the store, tagging it with the
/// reference's tag (if it has one) and recording its repo digest.
pub fn pull(
    client: &Client,
    store: &Store,
    reference: &Reference,
    platform: &Platform,
    progress: &dyn Progress,
    first_id: usize,
) -> Result<Pulled, RegistryError> {
    let reporter = Reporter { progress, first_id };
    let endpoints = client.endpoints(reference, false)?;
    let count = endpoints.len();
    let mut last = None;
    for (n, endpoint) in endpoints.iter().enumerate() {
        match pull_from(endpoint, store, reference, platform, &reporter) {
            Ok(pulled) => return Ok(pulled),
            Err(RegistryError::Store(e)) => return Err(RegistryError::Store(e)),
            Err(error) if endpoint.mirror && n + 1 < count => {
                progress.event(Event::Warning {
                    message: format!("mirror {} failed ({error}); trying the next", endpoint.host),
                });
                last = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last.expect("at least one endpoint"))
}

fn pull_from(
    repo: &Repository<'_>,
    store: &Store,
    reference: &Reference,
    platform: &Platform,
    reporter: &Reporter<'_>,
) -> Result<Pulled, RegistryError> {
    let shown = reference.familiar();
    let wanted =
        reference.digest.clone().or_else(|| reference.tag.clone()).unwrap_or_else(|| "latest".into());
    let (bytes, content_type, served) = fetch_manifest(repo, &wanted, &shown)?;
    let manifest_digest = match &reference.digest {
        Some(expected) => verify(&format!("manifest of {shown}"), &bytes, expected)?,
        None => match served {
            Some(expected) => verify(&format!("manifest of {shown}"), &bytes, &expected)?,
            None => Digest::sha256(&bytes),
        },
    };
    let document = Document::parse(&content_type, &bytes).map_err(|e| RegistryError::Unusable {
        what: format!("the manifest of {shown}"),
        message: e.to_string(),
    })?;
    let manifest = match document {
        Document::Manifest(manifest) => manifest,
        Document::Index(index) => {
            let chosen = platform.choose(&index).ok_or_else(|| RegistryError::NoPlatform {
                wanted: platform.to_string(),
                reference: shown.clone(),
                available: index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
                    .collect(),
            })?;
            let (bytes, content_type, _) = fetch_manifest(repo, &chosen.digest, &shown)?;
            verify(&format!("the {platform} manifest of {shown}"), &bytes, &chosen.digest)?;
            match Document::parse(&content_type, &bytes) {
                Ok(Document::Manifest(manifest)) => manifest,
                Ok(Document::Index(_)) => {
                    return Err(RegistryError::Unusable {
                        what: format!("the {platform} manifest of {shown}"),
                        message: "it is an index inside an index".into(),
                    });
                }
                Err(e) => {
                    return Err(RegistryError::Unusable {
                        what: format!("the {platform} manifest of {shown}"),
                        message: e.to_string(),
                    });
                }
            }
        }
    };
    let config_bytes = fetch_config(repo, &manifest.config, &shown)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| RegistryError::Unusable {
        what: format!("the config of {shown}"),
        message: e.to_string(),
    })?;
    let offered = Platform::new(&config.os, &config.architecture, config.variant.as_deref());
    if !platform.runs(&offered) {
        return Err(RegistryError::NoPlatform {
            wanted: platform.to_string(),
            reference: shown,
            available: vec![offered.to_string()],
        });
    }
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RegistryError::Unusable {
            what: shown.clone(),
            message: format!(
                "its config lists {} layers and its manifest {}",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    let layers = fetch_layers(repo, store, &manifest, &config, reporter)?;
    let _lock = store.lock(false)?;
    let names: Vec<Reference> = reference
        .tag
        .is_some()
        .then(|| Reference { digest: None, ..reference.clone() })
        .into_iter()
        .collect();
    let image = store.commit_image(&config_bytes, &layers, &names)?;
    let digested = Reference { tag: None, digest: Some(manifest_digest.to_string()), ..reference.clone() };
    store.add_repo_digest(&image, &digested)?;
    Ok(Pulled { image, manifest_digest })
}

/// GETs a manifest by tag or digest: its bytes, media type and the digest
/// the registry says it has.
fn fetch_manifest(
    repo: &Repository<'_>,
    wanted: &str,
    shown: &str,
) -> Result<(Vec<u8>, String, Option<String>), RegistryError> {
    let url = repo.url(&format!("manifests/{wanted}"))?;
    let request =
        || Request::new(Method::GET, url.clone()).header("Accept", media_type::ACCEPTED_MANIFESTS.join(", "));
    fetch_document(repo, request, shown, &format!("the manifest of {shown}"), MAX_MANIFEST)
}

fn fetch_config(
    repo: &Repository<'_>,
    descriptor: &Descriptor,
    shown: &str,
) -> Result<Vec<u8>, RegistryError> {
    let what = format!("config {} of {shown}", descriptor.digest);
    if descriptor.size > MAX_CONFIG {
        return Err(RegistryError::TooLarge { what, limit: MAX_CONFIG });
    }
    let url = repo.url(&format!("blobs/{}", descriptor.digest))?;
    let (bytes, _, _) =
        fetch_document(repo, || Request::new(Method::GET, url.clone()), &what, &what, MAX_CONFIG)?;
    verify(&what, &bytes, &descriptor.digest)?;
    Ok(bytes)
}

/// GETs a small document whole: its bytes, content type and the digest the
/// registry says it has. A body cut short or stalled is asked for again
/// (three times in all).
fn fetch_document(
    repo: &Repository<'_>,
    request: impl Fn() -> Request,
    not_found: &str,
    what: &str,
    limit: u64,
) -> Result<(Vec<u8>, String, Option<String>), RegistryError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = repo.send(request())?;
        if !response.status().is_success() {
            return Err(repo.error(response, not_found));
        }
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type = header("content-type").unwrap_or_default();
        let served = header("docker-content-digest").filter(|d| d.starts_with("sha256:"));
        match read_limited(response, what, limit) {
            Ok(bytes) => return Ok((bytes, content_type, served)),
            Err(RegistryError::Io { .. }) if attempt < 3 => {
                std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Every layer of `manifest` in the store: (diff ID, uncompressed size),
/// bottom first.
fn fetch_layers(
    repo: &Repository<'_>,
    store: &Store,
    manifest: &Manifest,
    config: &ImageConfig,
    reporter: &Reporter<'_>,
) -> Result<Vec<(Digest, u64)>, RegistryError> {
    let mut wanted: Vec<(usize, Descriptor, Digest)> = Vec::new();
    for (n, (layer, diff_id)) in manifest.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        let diff_id: Digest = diff_id.parse().map_err(|_| RegistryError::Unusable {
            what: "the image config".into(),
            message: format!("diff ID {diff_id} is not a sha256 digest"),
        })?;
        wanted.push((n, layer.clone(), diff_id));
    }
    let queue = Mutex::new(wanted.clone());
    let failed = AtomicBool::new(false);
    let errors: Mutex<Vec<RegistryError>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..CONCURRENT_DOWNLOADS.min(wanted.len()) {
            scope.spawn(|| {
                loop {
                    if failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some((n, layer, diff_id)) = queue.lock().unwrap().pop() else { return };
                    if let Err(e) =
                        fetch_layer(repo, store, &layer, &diff_id, reporter.first_id + n, reporter)
                    {
                        failed.store(true, Ordering::SeqCst);
                        errors.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    if let Some(error) = errors.into_inner().unwrap().into_iter().next() {
        return Err(error);
    }
    wanted
        .into_iter()
        .map(|(_, _, diff_id)| {
            let size = std::fs::metadata(store.blob_path(&diff_id))
                .map_err(|source| RegistryError::Io { what: format!("layer {diff_id}"), source })?
                .len();
            Ok((diff_id, size))
        })
        .collect()
}

/// Fetches one layer into the store unless it is there already.
fn fetch_layer(
    repo: &Repository<'_>,
    store: &Store,
    layer: &Descriptor,
    diff_id: &Digest,
    id: usize,
    reporter: &Reporter<'_>,
) -> Result<(), RegistryError> {
    let progress = reporter.progress;
    let short = layer.digest.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    let source = format!("{}/{}", repo.host, repo.path);
    let form = CompressedForm {
        digest: layer.digest.clone(),
        size: layer.size,
        media_type: layer.media_type.clone(),
        made_by: None,
        sources: vec![source],
    };
    if store.has_blob(diff_id) {
        progress.event(Event::Started { id, name: format!("{short}: already exists") });
        progress.event(Event::Cached { id });
        store.record_compressed(diff_id, form)?;
        return Ok(());
    }
    let started = Instant::now();
    progress.event(Event::Started { id, name: format!("{short}: pulling {}", layer.digest) });
    let url = repo.url(&format!("blobs/{}", layer.digest))?;
    let mut reader = BlobReader {
        repo,
        url,
        body: None,
        offset: 0,
        size: layer.size,
        resumes: 0,
        report: &|current| progress.event(Event::Transfer { id, current, total: layer.size }),
        refused: None,
    };
    // The download runs ahead of staging: the network and the
    // decompression, hashing and writing overlap.
    let staged = with_read_ahead(&mut reader, 4, |ahead| store.stage(ahead));
    let staged = match staged {
        Ok(staged) => staged,
        Err(e) => {
            progress.event(Event::Failed {
                id,
                seconds: started.elapsed().as_secs_f64(),
                message: e.to_string(),
            });
            return Err(reader.refused.take().unwrap_or(RegistryError::Store(e)));
        }
    };
    let fail = |error: RegistryError| {
        progress.event(Event::Failed {
            id,
            seconds: started.elapsed().as_secs_f64(),
            message: error.to_string(),
        });
        error
    };
    if staged.raw_digest.to_string() != layer.digest {
        return Err(fail(RegistryError::DigestMismatch {
            what: format!("layer {}", layer.digest),
            expected: layer.digest.clone(),
            actual: staged.raw_digest.to_string(),
        }));
    }
    if staged.digest != *diff_id {
        return Err(fail(RegistryError::DigestMismatch {
            what: format!("the uncompressed content of layer {}", layer.digest),
            expected: diff_id.to_string(),
            actual: staged.digest.to_string(),
        }));
    }
    if let Err(problem) = &staged.tar {
        return Err(fail(RegistryError::Unusable {
            what: format!("layer {}", layer.digest),
            message: problem.to_string(),
        }));
    }
    staged.commit()?;
    store.record_compressed(diff_id, form)?;
    progress.event(Event::Done { id, seconds: started.elapsed().as_secs_f64() });
    Ok(())
}

/// A blob's bytes from the registry, resumed with `Range` when the
/// connection breaks.
struct BlobReader<'a> {
    repo: &'a Repository<'a>,
    url: String,
    body: Option<Box<dyn Read + Send>>,
    offset: u64,
    size: u64,
    resumes: u32,
    report: &'a (dyn Fn(u64) + Sync),
    /// The registry's answer when it refused the blob (not retried).
    refused: Option<RegistryError>,
}

impl BlobReader<'_> {
    fn open(&mut self) -> io::Result<()> {
        let mut request = Request::new(Method::GET, self.url.clone());
        if self.offset > 0 {
            request = request.header("Range", format!("bytes={}-", self.offset));
        }
        let response = match self.repo.send(request) {
            Ok(response) => response,
            Err(RegistryError::Transport(e)) => return Err(io::Error::other(e)),
            Err(other) => return Err(self.refuse(other)),
        };
        let status = response.status();
        if status == StatusCode::PARTIAL_CONTENT && self.offset > 0 {
            self.body = Some(Box::new(response.into_body().into_reader()));
            return Ok(());
        }
        if !status.is_success() {
            let error = self.repo.error(response, &self.url);
            return Err(self.refuse(error));
        }
        let mut body: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
        // A whole body after a Range request: skip what was read already.
        if self.offset > 0 {
            let skipped = io::copy(&mut (&mut body).take(self.offset), &mut io::sink())?;
            if skipped < self.offset {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the blob is shorter on a second read",
                ));
            }
        }
        self.body = Some(body);
        Ok(())
    }

    /// Keeps a refusal for the caller; the read fails without retries.
    fn refuse(&mut self, error: RegistryError) -> io::Error {
        let message = error.to_string();
        self.refused = Some(error);
        self.resumes = RESUMES;
        io::Error::new(io::ErrorKind::PermissionDenied, message)
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.body.is_none() {
                match self.open() {
                    Ok(()) => {}
                    Err(error) if self.refused.is_some() || self.resumes >= RESUMES => return Err(error),
                    Err(_) => {
                        self.resumes += 1;
                        std::thread::sleep(std::time::Duration::from_millis(250 << self.resumes.min(4)));
                        continue;
                    }
                }
            }
            let result = self.body.as_mut().expect("opened").read(buf);
            let error = match result {
                Ok(0) if self.offset < self.size => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the connection closed after {} of {} bytes", self.offset, self.size),
                ),
                Ok(n) => {
                    self.offset += n as u64;
                    if self.offset > self.size {
                        return Err(io::Error::other(format!(
                            "the blob is longer than the {} bytes its descriptor says",
                            self.size
                        )));
                    }
                    (self.report)(self.offset);
                    return Ok(n);
                }
                Err(e) => e,
            };
            self.body = None;
            if self.resumes >= RESUMES {
                return Err(super::stalled(error));
            }
            self.resumes += 1;
            std::thread::sleep(std::time::Duration::from_millis(250 << self.resumes.min(4)));
        }
    }
}
