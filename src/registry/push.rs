//! Push: an image in the store → a repository of a registry.
//!
//! - Each layer (stored uncompressed) needs a compressed form: one the
//!   store remembers (from an earlier push or pull) is looked for in the
//!   registry first — HEAD in the destination, then a cross-repository
//!   mount from a repository of the same registry known to hold it.
//! - A layer the registry lacks is compressed on the way (gzip by default,
//!   zstd on request) and streamed from disk: monolithically when its
//!   compressed digest is known (hoist's compressors are deterministic),
//!   else in one streamed PATCH (or chunks of the size the registry asks
//!   for with `OCI-Chunk-Min-Length`), digest computed on the way and
//!   remembered, so that a second push does not compress again.
//! - Four layers go at once; the config, then the manifest (OCI media
//!   types) last, so the registry never names a blob it lacks.

use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ureq::http::{Method, StatusCode};

use super::transport::{Request, Transport};
use super::{Client, RegistryError, Repository};
use crate::image::manifest::{Descriptor, Manifest, media_type};
use crate::image::reference::Reference;
use crate::layer::{Compression, Digest, DigestReader, GZIP_FORMAT, GzipReader, with_read_ahead};
use crate::progress::{self, Event, Progress};
use crate::store::{CompressedForm, Image, Store};

/// Layers uploaded at once.
const CONCURRENT_UPLOADS: usize = 4;
/// Times a layer upload is started again after a broken connection.
const UPLOAD_ATTEMPTS: u32 = 3;
/// The gzip level of pushed layers (the zlib default, as Docker's).
const GZIP_LEVEL: u32 = 6;
/// The zstd level of pushed layers (zstd's default).
const ZSTD_LEVEL: i32 = 3;
/// The chunk size when a registry asks for chunked uploads.
const CHUNK: u64 = 16 << 20;

/// How to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOptions {
    /// The layers' compression: gzip or zstd.
    pub compression: Compression,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions { compression: Compression::Gzip }
    }
}

/// What a push left in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
}

/// Pushes `image` to `dest` (whose tag names it there) and records the
/// repo digest in the store.
pub fn push(
    client: &Client,
    store: &Store,
    image: &Image,
    dest: &Reference,
    options: &PushOptions,
    progress: &dyn Progress,
    first_id: usize,
) -> Result<Pushed, RegistryError> {
    if options.compression == Compression::None {
        return Err(RegistryError::Unusable {
            what: "--compression".into(),
            message: "use gzip or zstd".into(),
        });
    }
    let repo = client.endpoints(dest, true)?.pop().expect("the registry itself");
    repo.prepare_auth()?;
    let layers = image.layers();
    let diff_ids: Vec<Digest> = image.config.rootfs.diff_ids.iter().filter_map(|d| d.parse().ok()).collect();
    if diff_ids.len() != layers.len() {
        return Err(RegistryError::Unusable {
            what: format!("image {}", image.id()),
            message: "its config and manifest disagree on its layers".into(),
        });
    }
    let queue = Mutex::new((0..layers.len()).rev().collect::<Vec<_>>());
    let descriptors: Mutex<Vec<Option<Descriptor>>> = Mutex::new(vec![None; layers.len()]);
    let failed = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..CONCURRENT_UPLOADS.min(layers.len()) {
            scope.spawn(|| {
                loop {
                    if failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(n) = queue.lock().unwrap().pop() else { return };
                    let (blob, _) = layers[n];
                    let layer = Layer { blob, diff_id: diff_ids[n], id: first_id + n };
                    match push_layer(&repo, store, &layer, options, progress) {
                        Ok(descriptor) => descriptors.lock().unwrap()[n] = Some(descriptor),
                        Err(e) => {
                            failed.store(true, Ordering::SeqCst);
                            errors.lock().unwrap().push(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(error) = errors.into_inner().unwrap().into_iter().next() {
        return Err(error);
    }
    let layers: Vec<Descriptor> =
        descriptors.into_inner().unwrap().into_iter().map(|d| d.expect("pushed")).collect();
    let config =
        descriptor(media_type::OCI_CONFIG, &image.config_digest.to_string(), image.config_bytes.len() as u64);
    if !blob_exists(&repo, &config.digest)? {
        upload_bytes(&repo, &config.digest, &image.config_bytes)?;
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        config,
        layers,
        extra: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
    let digest = Digest::sha256(&bytes);
    let tag = dest.tag.clone().or_else(|| dest.digest.clone()).unwrap_or_else(|| "latest".into());
    let request = Request::new(Method::PUT, repo.url(&format!("manifests/{tag}"))?)
        .header("Content-Type", media_type::OCI_MANIFEST)
        .body(bytes.clone());
    let response = repo.send(request)?;
    if response.status() != StatusCode::CREATED && !response.status().is_success() {
        return Err(repo.error(response, &format!("the manifest of {}", dest.familiar())));
    }
    if let Some(served) = response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok())
        && served != digest.to_string()
    {
        return Err(RegistryError::DigestMismatch {
            what: format!("the manifest pushed to {}", dest.familiar()),
            expected: digest.to_string(),
            actual: served.to_string(),
        });
    }
    let digested = Reference { tag: None, digest: Some(digest.to_string()), ..dest.clone() };
    store.add_repo_digest(image, &digested)?;
    Ok(Pushed { digest, size: bytes.len() as u64 })
}

/// A layer to push.
struct Layer {
    /// Its blob in the store (uncompressed).
    blob: Digest,
    diff_id: Digest,
    id: usize,
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: digest.into(),
        size,
        platform: None,
        extra: Default::default(),
    }
}

/// Makes sure the registry has a compressed form of `layer`; returns its
/// descriptor.
fn push_layer(
    repo: &Repository<'_>,
    store: &Store,
    layer: &Layer,
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<Descriptor, RegistryError> {
    let short = layer.diff_id.hex().chars().take(12).collect::<String>();
    progress::step(progress, layer.id, format!("{short}: pushing"), || {
        let (how, mut form) = place_layer(repo, store, layer, options, progress)?;
        form.sources = vec![format!("{}/{}", repo.host, repo.path)];
        store.record_compressed(&layer.diff_id, form.clone())?;
        progress.event(Event::Output { id: layer.id, stream: progress::Stream::Stdout, line: how });
        Ok(descriptor(options.compression.media_type(), &form.digest, form.size))
    })
}

/// Finds the layer in the registry, mounts it from another repository, or
/// uploads it; says which, and the form the registry now holds.
fn place_layer(
    repo: &Repository<'_>,
    store: &Store,
    layer: &Layer,
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<(String, CompressedForm), RegistryError> {
    let forms: Vec<CompressedForm> = store
        .compressed_forms(&layer.diff_id)
        .into_iter()
        .filter(|f| Compression::from_media_type(&f.media_type) == Some(options.compression))
        .collect();
    for form in &forms {
        if blob_exists(repo, &form.digest)? {
            return Ok(("layer already exists".into(), form.clone()));
        }
        let prefix = format!("{}/", repo.host);
        for source in form.sources.iter().filter_map(|s| s.strip_prefix(&prefix)) {
            if source != repo.path && mount(repo, &form.digest, source)? {
                return Ok((format!("mounted from {source}"), form.clone()));
            }
        }
    }
    let maker = compressor(options.compression);
    let known = forms.iter().find(|f| f.made_by.as_deref() == Some(maker.as_str())).cloned();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match upload_layer(repo, store, layer, options, known.as_ref(), progress) {
            Ok(form) => return Ok(("pushed".into(), form)),
            Err(RegistryError::Transport(e)) if Transport::is_transient(&e) && attempt < UPLOAD_ATTEMPTS => {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

fn blob_exists(repo: &Repository<'_>, digest: &str) -> Result<bool, RegistryError> {
    let response = repo.send(Request::new(Method::HEAD, repo.url(&format!("blobs/{digest}"))?))?;
    match response.status() {
        status if status.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(repo.error(response, &format!("blob {digest}"))),
    }
}

/// Asks the registry to mount `digest` from `from`; false when it would
/// not (the upload session it opened instead is abandoned).
fn mount(repo: &Repository<'_>, digest: &str, from: &str) -> Result<bool, RegistryError> {
    let scoped = repo.with_mount_scope(from);
    let url = scoped.url(&format!("blobs/uploads/?mount={digest}&from={from}"))?;
    let response = scoped.send(Request::new(Method::POST, url))?;
    match response.status() {
        StatusCode::CREATED => Ok(true),
        status if status.is_success() => Ok(false),
        // Not allowed to read `from`: upload instead.
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Ok(false),
        _ => Err(scoped.error(response, &format!("mounting blob {digest} from {from}"))),
    }
}

/// An upload session: where to send the data, and the chunk size the
/// registry insists on.
struct Session {
    location: String,
    chunk_min: Option<u64>,
}

fn start_upload(repo: &Repository<'_>) -> Result<Session, RegistryError> {
    let response = repo.send(Request::new(Method::POST, repo.url("blobs/uploads/")?))?;
    if response.status() != StatusCode::ACCEPTED {
        return Err(repo.error(response, "starting an upload"));
    }
    next_session(repo, &response, None)
}

fn next_session(
    repo: &Repository<'_>,
    response: &super::transport::Response,
    chunk_min: Option<u64>,
) -> Result<Session, RegistryError> {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let location = header("location").ok_or_else(|| RegistryError::Registry {
        registry: repo.host.clone(),
        status: response.status().as_u16(),
        message: "an upload answer without a Location".into(),
    })?;
    let chunk_min = chunk_min.or_else(|| header("oci-chunk-min-length").and_then(|v| v.parse().ok()));
    Ok(Session { location: repo.absolute(&location)?, chunk_min })
}

fn with_query(url: &str, query: &str) -> String {
    format!("{url}{}{query}", if url.contains('?') { '&' } else { '?' })
}

/// Uploads a small blob in one PUT.
fn upload_bytes(repo: &Repository<'_>, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
    let session = start_upload(repo)?;
    let request = Request::new(Method::PUT, with_query(&session.location, &format!("digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec());
    let response = repo.send(request)?;
    if !response.status().is_success() {
        return Err(repo.error(response, &format!("blob {digest}")));
    }
    Ok(())
}

/// Names the compressor whose output for a layer is the same bytes every
/// time: a remembered digest is trusted only for the same one.
fn compressor(compression: Compression) -> String {
    match compression {
        Compression::Gzip => format!("hoist-gzip-{GZIP_FORMAT}-{GZIP_LEVEL}"),
        Compression::Zstd => format!("zstd-{}-{ZSTD_LEVEL}", zstd::zstd_safe::version_number()),
        Compression::None => "tar".into(),
    }
}

/// The layer's bytes compressed as asked, read from the store.
fn compressed(
    store: &Store,
    layer: &Layer,
    encoding: Compression,
) -> Result<Box<dyn Read + Send>, RegistryError> {
    let file = store.open_blob(&layer.blob)?;
    let file = io::BufReader::with_capacity(1 << 20, file);
    Ok(match encoding {
        Compression::Gzip => Box::new(GzipReader::new(file, GZIP_LEVEL)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Encoder::new(file, ZSTD_LEVEL).map_err(|source| {
                RegistryError::Io { what: format!("compressing layer {}", layer.diff_id), source }
            })?)
        }
        Compression::None => Box::new(file),
    })
}

/// Counts and reports what passes through.
struct Reported<'a, R> {
    inner: R,
    sent: u64,
    report: &'a dyn Fn(u64),
}

impl<R: Read> Read for Reported<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        (self.report)(self.sent);
        Ok(n)
    }
}

/// Uploads the compressed layer: monolithic when its digest is known,
/// streamed otherwise. Returns the form the registry now has.
fn upload_layer(
    repo: &Repository<'_>,
    store: &Store,
    layer: &Layer,
    options: &PushOptions,
    known: Option<&CompressedForm>,
    progress: &dyn Progress,
) -> Result<CompressedForm, RegistryError> {
    let session = start_upload(repo)?;
    let id = layer.id;
    let report =
        |sent: u64| progress.event(Event::Transfer { id, current: sent, total: known.map_or(0, |k| k.size) });
    // Compression runs ahead of the upload: both cores work, one making
    // bytes and the other (with the registry) taking them.
    with_read_ahead(compressed(store, layer, options.compression)?, 4, |ahead| {
        let mut body = Reported { inner: DigestReader::new(ahead), sent: 0, report: &report };
        send_layer(repo, store, layer, options, known, progress, session, &mut body)
    })
}

/// Sends the compressed layer through an upload session.
#[allow(clippy::too_many_arguments)]
fn send_layer(
    repo: &Repository<'_>,
    store: &Store,
    layer: &Layer,
    options: &PushOptions,
    known: Option<&CompressedForm>,
    progress: &dyn Progress,
    session: Session,
    body: &mut Reported<'_, DigestReader<&mut dyn Read>>,
) -> Result<CompressedForm, RegistryError> {
    let media_type = options.compression.media_type().to_string();
    let here = format!("{}/{}", repo.host, repo.path);
    if let (Some(known), None) = (known, session.chunk_min) {
        let request =
            Request::new(Method::PUT, with_query(&session.location, &format!("digest={}", known.digest)))
                .header("Content-Type", "application/octet-stream");
        let response = repo.send_streaming(request, body, Some(known.size))?;
        if response.status().is_success() {
            return Ok(CompressedForm { sources: vec![here], ..known.clone() });
        }
        // The compressor no longer makes those bytes: stream it anew.
        if response.status() != StatusCode::BAD_REQUEST {
            return Err(repo.error(response, &format!("layer {}", layer.diff_id)));
        }
        return upload_layer(repo, store, layer, options, None, progress);
    }
    let session = match session.chunk_min {
        None => {
            let request = Request::new(Method::PATCH, session.location.clone())
                .header("Content-Type", "application/octet-stream");
            let response = repo.send_streaming(request, body, None)?;
            if response.status() != StatusCode::ACCEPTED && !response.status().is_success() {
                return Err(repo.error(response, &format!("layer {}", layer.diff_id)));
            }
            next_session(repo, &response, None)?
        }
        Some(min) => upload_chunks(repo, session, min.max(CHUNK), body, layer)?,
    };
    // Anything the compressor holds back until its end is in `body` now.
    let (digest, size) = (body.inner.digest(), body.inner.byte_count());
    let request = Request::new(Method::PUT, with_query(&session.location, &format!("digest={digest}")))
        .header("Content-Length", "0");
    let response = repo.send(request)?;
    if !response.status().is_success() {
        return Err(repo.error(response, &format!("layer {}", layer.diff_id)));
    }
    Ok(CompressedForm {
        digest: digest.to_string(),
        size,
        media_type,
        made_by: Some(compressor(options.compression)),
        sources: vec![here],
    })
}

/// PATCHes the body in chunks of `chunk` bytes with Content-Range.
fn upload_chunks(
    repo: &Repository<'_>,
    mut session: Session,
    chunk: u64,
    body: &mut dyn Read,
    layer: &Layer,
) -> Result<Session, RegistryError> {
    let mut offset = 0u64;
    let mut buffer = Vec::with_capacity(chunk as usize);
    loop {
        buffer.clear();
        body.take(chunk).read_to_end(&mut buffer).map_err(|source| RegistryError::Io {
            what: format!("reading layer {}", layer.diff_id),
            source,
        })?;
        if buffer.is_empty() {
            return Ok(session);
        }
        let end = offset + buffer.len() as u64 - 1;
        let request = Request::new(Method::PATCH, session.location.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{end}"))
            .body(buffer.clone());
        let response = repo.send(request)?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(repo.error(response, &format!("layer {}", layer.diff_id)));
        }
        session = next_session(repo, &response, session.chunk_min)?;
        offset = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_join_an_existing_one() {
        assert_eq!(
            with_query("https://r/v2/a/blobs/uploads/1", "digest=x"),
            "https://r/v2/a/blobs/uploads/1?digest=x"
        );
        assert_eq!(with_query("https://r/up?_state=s", "digest=x"), "https://r/up?_state=s&digest=x");
    }

    #[test]
    fn compression_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..200_000u32).flat_map(|n| (n % 251).to_le_bytes()).collect();
        let blob = store.put_blob(&data).unwrap();
        let layer = Layer { blob, diff_id: blob, id: 0 };
        for encoding in [Compression::Gzip, Compression::Zstd] {
            let mut one = Vec::new();
            compressed(&store, &layer, encoding).unwrap().read_to_end(&mut one).unwrap();
            let mut two = Vec::new();
            compressed(&store, &layer, encoding).unwrap().read_to_end(&mut two).unwrap();
            assert_eq!(Digest::sha256(&one), Digest::sha256(&two), "{encoding:?}");
            assert!(one.len() < data.len());
        }
    }
}
