//! Registries: the OCI distribution protocol, for pull, push and login.
//!
//! - [`Client`]: one per hoist process; settings, connection pools, the
//!   tokens and credentials of the run.
//! - [`pull`]: a reference → an image in the store, every digest verified
//!   before anything becomes visible; layers fetched in parallel, streamed,
//!   decompressed once, resumed with `Range` after a broken connection.
//! - [`push`]: an image in the store → a registry, layers compressed on the
//!   way and uploaded in parallel, blobs the registry has skipped or
//!   mounted from another repository.
//! - [`login`]: credentials checked against the registry, then filed in
//!   Docker's `config.json`.
//! - Docker Hub (`docker.io`) is `registry-1.docker.io`, through the mirrors
//!   of the settings first.

pub mod auth;
pub mod credentials;
pub mod proxy;
mod pull;
mod push;
pub mod settings;
pub mod transport;

pub use pull::{Pulled, pull};
pub use push::{PushOptions, Pushed, push};

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use serde::Deserialize;
use ureq::http::{Method, StatusCode};

use crate::image::reference::{DEFAULT_DOMAIN, Reference};
use crate::layer::Digest;
use crate::store::StoreError;
use auth::{Authenticator, Challenge};
use credentials::{Credentials, CredentialsError, DockerConfig};
use settings::Settings;
use transport::{Request, Response, Transport, TransportError};

/// Docker Hub's API host.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry wants credentials hoist does not have, or refused them.
    #[error("unauthorized: {}; run hoist login {}", if *with_credentials { "the registry refused the credentials or their access" } else { "authentication required" }, login_name(registry))]
    Unauthorized {
        /// The registry.
        registry: String,
        /// Whether credentials were sent.
        with_credentials: bool,
    },
    /// The registry refused the operation (403).
    #[error("denied: {registry} refused access to {repository}: {message}")]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// What it said.
        message: String,
    },
    /// The image is not in the registry.
    #[error("not found: {reference}")]
    NotFound {
        /// The reference, as the user wrote it.
        reference: String,
    },
    /// No manifest of the index is for the wanted platform.
    #[error("no {wanted} variant in {reference}; available: {}", available.join(", "))]
    NoPlatform {
        /// What was asked for.
        wanted: String,
        /// The reference.
        reference: String,
        /// What the index has.
        available: Vec<String>,
    },
    /// Content whose digest is not what it was asked for.
    #[error("{what} has digest {actual}, not {expected}: the registry sent damaged or wrong content")]
    DigestMismatch {
        /// The blob or manifest.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// A manifest or config larger than hoist reads.
    #[error("{what} is larger than the {limit} bytes hoist accepts")]
    TooLarge {
        /// The document.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A manifest, config or layer hoist cannot use.
    #[error("{what}: {message}")]
    Unusable {
        /// What it is.
        what: String,
        /// Why.
        message: String,
    },
    /// The registry answered with an error hoist has no better word for.
    #[error("{registry}: {message} (HTTP {status})")]
    Registry {
        /// The registry.
        registry: String,
        /// The HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// No answer: connection, TLS or proxy trouble.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Docker's config file or a credential helper failed.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing a blob failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// How a registry is named in `hoist login`.
fn login_name(registry: &str) -> &str {
    if registry == DEFAULT_DOMAIN || registry == DOCKER_HUB_API { "" } else { registry }
}

/// A registry's error body: `{"errors":[{"code":…,"message":…}]}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The registry client of one hoist process.
pub struct Client {
    transport: Transport,
    auth: Authenticator,
    credentials: Mutex<HashMap<String, Option<Credentials>>>,
}

impl Client {
    /// A client with `settings`.
    pub fn new(settings: Settings) -> Client {
        Client {
            transport: Transport::new(settings),
            auth: Authenticator::default(),
            credentials: Mutex::new(HashMap::new()),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        self.transport.settings()
    }

    /// The credentials for `registry` (`docker.io` or `host[:port]`), read
    /// once per run.
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(found) = self.credentials.lock().unwrap().get(registry) {
            return Ok(found.clone());
        }
        let found = DockerConfig::open(&self.settings().docker_config_file())?.get(registry)?;
        self.credentials.lock().unwrap().insert(registry.to_string(), found.clone());
        Ok(found)
    }

    /// The places to fetch `reference` from, in order: the mirrors of
    /// Docker Hub, then the registry itself.
    fn endpoints(&self, reference: &Reference, push: bool) -> Result<Vec<Repository<'_>>, RegistryError> {
        let scopes =
            vec![format!("repository:{}:{}", reference.path, if push { "pull,push" } else { "pull" })];
        let mut out = Vec::new();
        if reference.domain == DEFAULT_DOMAIN && !push {
            for mirror in &self.settings().mirrors {
                let host = mirror
                    .split("://")
                    .nth(1)
                    .unwrap_or(mirror)
                    .split('/')
                    .next()
                    .unwrap_or(mirror)
                    .to_string();
                out.push(Repository {
                    client: self,
                    host: host.clone(),
                    credentials_key: host,
                    base: Some(mirror.trim_end_matches('/').to_string()),
                    path: reference.path.clone(),
                    scopes: scopes.clone(),
                    mirror: true,
                });
            }
        }
        let host = if reference.domain == DEFAULT_DOMAIN {
            DOCKER_HUB_API.to_string()
        } else {
            reference.domain.clone()
        };
        out.push(Repository {
            client: self,
            host,
            credentials_key: reference.domain.clone(),
            base: None,
            path: reference.path.clone(),
            scopes,
            mirror: false,
        });
        Ok(out)
    }
}

/// One repository of one registry (or mirror), with the scopes its requests
/// need.
pub(crate) struct Repository<'c> {
    client: &'c Client,
    /// The API host (`registry-1.docker.io`, `127.0.0.1:5000`).
    host: String,
    /// Whose credentials to use (`docker.io` for Docker Hub).
    credentials_key: String,
    /// A mirror's base URL; `None` finds the registry's scheme.
    base: Option<String>,
    /// The repository path (`library/alpine`).
    path: String,
    /// The token scopes its requests need.
    scopes: Vec<String>,
    /// Whether this is a mirror (failures fall back to the next endpoint).
    mirror: bool,
}

impl Repository<'_> {
    fn base(&self) -> Result<String, RegistryError> {
        match &self.base {
            Some(base) => Ok(base.clone()),
            None => Ok(self.client.transport.base_url(&self.host)?),
        }
    }

    /// `<base>/v2/<path>/<rest>`.
    fn url(&self, rest: &str) -> Result<String, RegistryError> {
        Ok(format!("{}/v2/{}/{rest}", self.base()?, self.path))
    }

    /// An absolute URL for a `Location` header.
    fn absolute(&self, location: &str) -> Result<String, RegistryError> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Ok(location.to_string());
        }
        let base = self.base()?;
        let origin: String = base.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        Ok(format!(
            "{origin}{}",
            if location.starts_with('/') { location.to_string() } else { format!("/{location}") }
        ))
    }

    /// With the scopes needed to mount a blob from `from` as well.
    fn with_mount_scope(&self, from: &str) -> Repository<'_> {
        let mut scopes = self.scopes.clone();
        scopes.push(format!("repository:{from}:pull"));
        Repository {
            client: self.client,
            host: self.host.clone(),
            credentials_key: self.credentials_key.clone(),
            base: self.base.clone(),
            path: self.path.clone(),
            scopes,
            mirror: self.mirror,
        }
    }

    fn authorization(&self) -> Result<Option<String>, RegistryError> {
        let credentials = self.client.credentials(&self.credentials_key)?;
        self.client.auth.header(&self.client.transport, &self.host, &self.scopes, credentials.as_ref())
    }

    /// Makes sure the registry has told how it authenticates (a GET of
    /// `/v2/`), so that requests with bodies that cannot be sent twice go
    /// out with the right Authorization.
    fn prepare_auth(&self) -> Result<(), RegistryError> {
        if self.client.auth.knows(&self.host) {
            return Ok(());
        }
        let url = format!("{}/v2/", self.base()?);
        let response = self.client.transport.send(&self.host, &Request::new(Method::GET, url))?;
        if let Some(challenge) = challenge_of(&response) {
            self.client.auth.learn(&self.host, challenge);
        }
        Ok(())
    }

    /// Sends a request with authentication: on a 401 the challenge is
    /// learnt (or the token renewed) and the request sent once more.
    fn send(&self, request: Request) -> Result<Response, RegistryError> {
        let mut renewed = false;
        loop {
            let mut attempt = Request {
                headers: request.headers.clone(),
                body: request.body.clone(),
                ..Request::new(request.method.clone(), request.url.clone())
            };
            if let Some(header) = self.authorization()? {
                attempt = attempt.header("Authorization", header);
            }
            let response = self.client.transport.send(&self.host, &attempt)?;
            if response.status() != StatusCode::UNAUTHORIZED || renewed {
                return Ok(response);
            }
            match challenge_of(&response) {
                Some(challenge) => {
                    self.client.auth.learn(&self.host, challenge);
                    self.client.auth.forget(&self.host, &self.scopes);
                    renewed = true;
                }
                None => return Ok(response),
            }
        }
    }

    /// Sends a request whose body streams from `body`: authentication is
    /// settled first, and the request is sent once.
    fn send_streaming(
        &self,
        request: Request,
        body: &mut dyn Read,
        length: Option<u64>,
    ) -> Result<Response, RegistryError> {
        self.prepare_auth()?;
        let mut request = request;
        if let Some(header) = self.authorization()? {
            request = request.header("Authorization", header);
        }
        Ok(self.client.transport.send_streaming(&self.host, &request, body, length)?)
    }

    /// The error a non-success answer means, `what` naming what was asked.
    fn error(&self, response: Response, what: &str) -> RegistryError {
        let status = response.status();
        let mut body = response.into_body();
        let bytes = body.with_config().limit(64 << 10).read_to_vec().unwrap_or_default();
        let parsed: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let first = parsed.as_ref().and_then(|b| b.errors.first());
        let message = first.map_or_else(
            || String::from_utf8_lossy(&bytes).trim().chars().take(200).collect(),
            |e| format!("{}: {}", e.code.to_lowercase().replace('_', " "), e.message),
        );
        let registry =
            if self.host == DOCKER_HUB_API { DEFAULT_DOMAIN.to_string() } else { self.host.clone() };
        let code = first.map(|e| e.code.as_str()).unwrap_or("");
        match status {
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                registry: self.credentials_key.clone(),
                with_credentials: self.client.credentials(&self.credentials_key).ok().flatten().is_some(),
            },
            StatusCode::FORBIDDEN => {
                RegistryError::Denied { registry, repository: self.path.clone(), message }
            }
            StatusCode::NOT_FOUND if code.is_empty() || code.ends_with("_UNKNOWN") => {
                RegistryError::NotFound { reference: what.to_string() }
            }
            _ => RegistryError::Registry {
                registry,
                status: status.as_u16(),
                message: format!("{what}: {message}"),
            },
        }
    }
}

fn challenge_of(response: &Response) -> Option<Challenge> {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(Challenge::parse)
}

/// Reads a small document (manifest, config) of at most `limit` bytes.
fn read_limited(response: Response, what: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
    if let Some(length) =
        response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > limit
    {
        return Err(RegistryError::TooLarge { what: what.to_string(), limit });
    }
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| RegistryError::Io { what: what.to_string(), source: stalled(source) })?;
    if bytes.len() as u64 > limit {
        return Err(RegistryError::TooLarge { what: what.to_string(), limit });
    }
    Ok(bytes)
}

/// A read error in words a user recognises: ureq's "timeout: per read" is
/// the stall timeout.
fn stalled(error: std::io::Error) -> std::io::Error {
    if error.kind() == std::io::ErrorKind::TimedOut || error.to_string().contains("timeout") {
        return std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out: the registry stopped sending data",
        );
    }
    error
}

/// Checks `bytes` against `expected` (`sha256:<hex>`).
fn verify(what: &str, bytes: &[u8], expected: &str) -> Result<Digest, RegistryError> {
    let actual = Digest::sha256(bytes);
    if actual.to_string() != expected {
        return Err(RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(actual)
}

/// Checks credentials against `registry` and files them in Docker's config
/// (through its credential helper when one is configured).
pub fn login(client: &Client, registry: &str, credentials: &Credentials) -> Result<(), RegistryError> {
    let host = if registry == DEFAULT_DOMAIN { DOCKER_HUB_API } else { registry };
    let base = client.transport.base_url(host)?;
    let ping = client.transport.send(host, &Request::new(Method::GET, format!("{base}/v2/")))?;
    let refused = || RegistryError::Unauthorized { registry: registry.to_string(), with_credentials: true };
    if ping.status() == StatusCode::UNAUTHORIZED {
        match challenge_of(&ping) {
            Some(challenge) => {
                client.auth.learn(host, challenge.clone());
                let header = client.auth.header(&client.transport, host, &[], Some(credentials))?;
                let mut check = Request::new(Method::GET, format!("{base}/v2/"));
                if let Some(header) = header {
                    check = check.header("Authorization", header);
                }
                let answer = client.transport.send(host, &check)?;
                if answer.status() == StatusCode::UNAUTHORIZED || answer.status() == StatusCode::FORBIDDEN {
                    return Err(refused());
                }
            }
            None => return Err(refused()),
        }
    }
    let mut config = DockerConfig::open(&client.settings().docker_config_file())?;
    config.store(registry, credentials)?;
    Ok(())
}

/// Removes the credentials of `registry` from Docker's config; false when
/// there were none.
pub fn logout(client: &Client, registry: &str) -> Result<bool, RegistryError> {
    let mut config = DockerConfig::open(&client.settings().docker_config_file())?;
    Ok(config.erase(registry)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_goes_through_its_mirrors_first() {
        let settings = Settings {
            mirrors: vec!["https://m1.example".into(), "http://m2.example:5000/".into()],
            ..Settings::default()
        };
        let client = Client::new(settings);
        let hub = Reference::parse("alpine:3").unwrap();
        let endpoints = client.endpoints(&hub, false).unwrap();
        let hosts: Vec<&str> = endpoints.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(hosts, vec!["m1.example", "m2.example:5000", DOCKER_HUB_API]);
        assert_eq!(endpoints[0].path, "library/alpine");
        assert_eq!(endpoints[2].credentials_key, "docker.io");
        let pushed = client.endpoints(&hub, true).unwrap();
        assert_eq!(pushed.len(), 1, "pushes go to the registry itself");
        assert_eq!(pushed[0].scopes, vec!["repository:library/alpine:pull,push"]);
        let own = client.endpoints(&Reference::parse("localhost:5000/a/b").unwrap(), false).unwrap();
        assert_eq!(own.len(), 1, "mirrors are for Docker Hub only");
    }

    #[test]
    fn locations_resolve_against_the_registry() {
        let client = Client::new(Settings::default());
        let endpoints = client.endpoints(&Reference::parse("alpine").unwrap(), false).unwrap();
        let mut repo = endpoints.into_iter().next().unwrap();
        repo.base = Some("https://r.example:5000".into());
        assert_eq!(
            repo.absolute("/v2/x/blobs/uploads/1?s=2").unwrap(),
            "https://r.example:5000/v2/x/blobs/uploads/1?s=2"
        );
        assert_eq!(repo.absolute("https://s3.example/up").unwrap(), "https://s3.example/up");
    }

    #[test]
    fn unauthorized_tells_how_to_log_in() {
        let local =
            RegistryError::Unauthorized { registry: "127.0.0.1:5000".into(), with_credentials: false };
        assert_eq!(
            local.to_string(),
            "unauthorized: authentication required; run hoist login 127.0.0.1:5000"
        );
        let hub = RegistryError::Unauthorized { registry: "docker.io".into(), with_credentials: true };
        assert!(hub.to_string().ends_with("run hoist login "), "{hub}");
    }
}
