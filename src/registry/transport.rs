//! HTTP to registries: one connection pool per registry, TLS as Docker
//! sets it up, proxies, retries.
//!
//! - TLS: the platform's roots plus `certs.d/<host>/*.crt`; a client
//!   certificate from `certs.d/<host>/*.cert` with its `.key`.
//! - Loopback and insecure registries as Docker treats them: HTTPS, then
//!   HTTPS without certificate verification, then plain HTTP; what worked
//!   is remembered for the run.
//! - Proxies per [`ProxyEnv`]; redirects followed (at most 10) without
//!   the Authorization header on another host.
//! - Timeouts: 30 s to connect, and a stall timeout on every read and
//!   write (`HOIST_REGISTRY_STALL_SECONDS`, default 60).
//! - Retries: 5xx, 429 and broken connections, four times, backing off
//!   from 250 ms (honouring `Retry-After` up to 30 s).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ureq::Agent;
use ureq::http::{self, HeaderMap, Method, StatusCode};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use super::proxy::ProxyEnv;
use super::settings::Settings;

/// How many times a failed request is retried.
const RETRIES: u32 = 4;

/// A response, its body not yet read.
pub type Response = http::Response<ureq::Body>;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TLS could not be set up with the registry.
    #[error(
        "TLS with {host} failed: {message}; hoist trusts the system's CA certificates and those in {}/ (*.crt)",
        ca_dir.display()
    )]
    Tls {
        /// The registry.
        host: String,
        /// What TLS said.
        message: String,
        /// Where hoist looked for the registry's CA.
        ca_dir: std::path::PathBuf,
    },
    /// The registry's certificate files could not be read.
    #[error("{}: {message}", path.display())]
    Certificates {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// The connection failed, timed out or broke, retries included.
    #[error("{method} {url}: {message}")]
    Connection {
        /// The request's method.
        method: String,
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
}

/// A request to send; its body is in memory so that it can be sent again.
pub struct Request {
    /// GET, HEAD, POST, PUT, PATCH, DELETE.
    pub method: Method,
    /// The whole URL.
    pub url: String,
    /// Headers besides Authorization.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Vec<u8>,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request { method, url: url.into(), headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = body;
        self
    }
}

/// What an agent is made for: the registry (whose certificates it uses), the
/// proxy it goes through, and whether it verifies certificates.
type AgentKey = (String, Option<String>, bool);

/// The HTTP client of one hoist process.
pub struct Transport {
    settings: Settings,
    proxies: ProxyEnv,
    stall: Duration,
    /// Agents by (registry, proxy, whether certificates are verified),
    /// built on first use.
    agents: Mutex<HashMap<AgentKey, Agent>>,
    /// How each registry was reached: the scheme, and whether its
    /// certificate is verified.
    schemes: Mutex<HashMap<String, (&'static str, bool)>>,
}

impl Transport {
    /// A transport with `settings` and the environment's proxies.
    pub fn new(settings: Settings) -> Transport {
        let stall = std::env::var("HOIST_REGISTRY_STALL_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(Duration::from_secs(60), Duration::from_secs_f64);
        Transport {
            settings,
            proxies: ProxyEnv::from_env(),
            stall,
            agents: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The base URL of `host`'s API (`https://host`). For loopback and
    /// insecure registries, when HTTPS fails, HTTPS without certificate
    /// verification and then plain HTTP are tried, as Docker does.
    pub fn base_url(&self, host: &str) -> Result<String, TransportError> {
        if let Some((scheme, _)) = self.schemes.lock().unwrap().get(host) {
            return Ok(format!("{scheme}://{host}"));
        }
        let probe = |scheme: &'static str, verify: bool| {
            let request = Request::new(Method::GET, format!("{scheme}://{host}/v2/"));
            self.send_with(host, &request, verify).map(|_| (scheme, verify))
        };
        let found = match probe("https", true) {
            Ok(found) => found,
            Err(error) if self.settings.is_insecure(host) => {
                probe("https", false).or_else(|_| probe("http", true)).map_err(|_| error)?
            }
            Err(error) => return Err(error),
        };
        self.schemes.lock().unwrap().insert(host.to_string(), found);
        Ok(format!("{}://{host}", found.0))
    }

    /// Whether requests to `host` verify its certificate.
    fn verifies(&self, host: &str) -> bool {
        self.schemes.lock().unwrap().get(host).is_none_or(|(_, verify)| *verify)
    }

    fn agent(&self, host: &str, url: &str, verify: bool) -> Result<Agent, TransportError> {
        let scheme = if url.starts_with("http://") { "http" } else { "https" };
        let url_host = url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or(host);
        let proxy = self.proxies.proxy_for(scheme, url_host);
        let key = (host.to_string(), proxy.clone(), verify);
        if let Some(agent) = self.agents.lock().unwrap().get(&key) {
            return Ok(agent.clone());
        }
        let tls = self.tls_config(host, verify)?;
        let proxy = match &proxy {
            Some(url) => Some(ureq::Proxy::new(url).map_err(|e| TransportError::Connection {
                method: "CONNECT".into(),
                url: url.clone(),
                message: format!("the proxy URL is not usable: {e}"),
            })?),
            None => None,
        };
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(10)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(self.stall))
            .timeout_per_write(Some(self.stall))
            .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .proxy(proxy)
            .build();
        let agent: Agent = config.into();
        self.agents.lock().unwrap().insert(key, agent.clone());
        Ok(agent)
    }

    fn tls_config(&self, host: &str, verify: bool) -> Result<TlsConfig, TransportError> {
        let dir = self.settings.certs_for(host);
        let mut roots: Vec<Certificate<'static>> = system_roots();
        let mut client = None;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            names.sort();
            for path in names {
                match path.extension().and_then(|e| e.to_str()) {
                    Some("crt") => roots.extend(read_certificates(&path)?),
                    Some("cert") => {
                        let key = path.with_extension("key");
                        let chain = read_certificates(&path)?;
                        let pem = std::fs::read(&key).map_err(|e| TransportError::Certificates {
                            path: key.clone(),
                            message: format!("the client certificate's key is missing: {e}"),
                        })?;
                        let key = PrivateKey::from_pem(&pem).map_err(|e| TransportError::Certificates {
                            path: key,
                            message: e.to_string(),
                        })?;
                        client = Some(ClientCert::new_with_certs(&chain, key));
                    }
                    _ => {}
                }
            }
        }
        Ok(TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&roots))
            .client_cert(client)
            .disable_verification(!verify)
            .build())
    }

    /// Sends a request once; no retry.
    pub fn send_once(&self, host: &str, request: &Request) -> Result<Response, TransportError> {
        self.send_with(host, request, self.verifies(host))
    }

    fn send_with(&self, host: &str, request: &Request, verify: bool) -> Result<Response, TransportError> {
        let agent = self.agent(host, &request.url, verify)?;
        let mut builder = http::Request::builder().method(request.method.clone()).uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let built =
            builder.body(request.body.clone()).map_err(|e| self.failure(host, request, e.to_string()))?;
        agent.run(built).map_err(|e| self.classify(host, request, e))
    }

    /// Sends a request with a body read from `body` (`length` bytes when
    /// known, else chunked); no retry: the caller restarts what it streams.
    pub fn send_streaming(
        &self,
        host: &str,
        request: &Request,
        body: &mut dyn Read,
        length: Option<u64>,
    ) -> Result<Response, TransportError> {
        let agent = self.agent(host, &request.url, self.verifies(host))?;
        let mut builder = http::Request::builder().method(request.method.clone()).uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(length) = length {
            builder = builder.header("Content-Length", length.to_string());
        }
        let built = builder
            .body(ureq::SendBody::from_reader(body))
            .map_err(|e| self.failure(host, request, e.to_string()))?;
        agent.run(built).map_err(|e| self.classify(host, request, e))
    }

    /// Sends a request, retrying broken connections, 5xx and 429.
    pub fn send(&self, host: &str, request: &Request) -> Result<Response, TransportError> {
        let mut attempt = 0;
        loop {
            let result = self.send_once(host, request);
            let wait = match &result {
                Ok(response) if attempt < RETRIES && retryable_status(response.status()) => {
                    Some(retry_after(response.headers()).unwrap_or_else(|| backoff(attempt)))
                }
                Err(TransportError::Connection { .. }) if attempt < RETRIES => Some(backoff(attempt)),
                _ => None,
            };
            match wait {
                Some(wait) => {
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                None => return result,
            }
        }
    }

    fn failure(&self, _host: &str, request: &Request, message: String) -> TransportError {
        TransportError::Connection { method: request.method.to_string(), url: request.url.clone(), message }
    }

    fn classify(&self, host: &str, request: &Request, error: ureq::Error) -> TransportError {
        match error {
            ureq::Error::Tls(message) => TransportError::Tls {
                host: host.to_string(),
                message: message.to_string(),
                ca_dir: self.settings.certs_for(host),
            },
            ureq::Error::Rustls(e) => TransportError::Tls {
                host: host.to_string(),
                message: e.to_string(),
                ca_dir: self.settings.certs_for(host),
            },
            ureq::Error::Io(e) if e.to_string().to_lowercase().contains("certificate") => {
                TransportError::Tls {
                    host: host.to_string(),
                    message: e.to_string(),
                    ca_dir: self.settings.certs_for(host),
                }
            }
            ureq::Error::TooManyRedirects => {
                self.failure(host, request, "too many redirects (a redirect loop?)".into())
            }
            other => self.failure(host, request, other.to_string()),
        }
    }

    /// Whether a transport error is worth a retry of a whole transfer.
    pub fn is_transient(error: &TransportError) -> bool {
        matches!(error, TransportError::Connection { .. })
    }
}

/// Whether a status means "try again later".
pub fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.min(6))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(30)))
}

/// The platform's CA certificates (once per process).
fn system_roots() -> Vec<Certificate<'static>> {
    static ROOTS: std::sync::OnceLock<Vec<Certificate<'static>>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            rustls_native_certs::load_native_certs()
                .certs
                .into_iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect()
        })
        .clone()
}

fn read_certificates(path: &Path) -> Result<Vec<Certificate<'static>>, TransportError> {
    let fail = |message: String| TransportError::Certificates { path: path.to_path_buf(), message };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(cert) = item.map_err(|e| fail(e.to_string()))? {
            out.push(cert);
        }
    }
    if out.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_retried_and_others_not() {
        for status in [500, 502, 503, 504, 429] {
            assert!(retryable_status(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [200, 201, 202, 307, 400, 401, 403, 404, 416, 501] {
            assert!(!retryable_status(StatusCode::from_u16(status).unwrap()), "{status}");
        }
    }

    #[test]
    fn backoff_doubles_and_retry_after_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(1000));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "600".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn a_certificate_file_without_certificates_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "not a certificate").unwrap();
        let error = read_certificates(&path).unwrap_err();
        assert!(error.to_string().contains("ca.crt"), "{error}");
    }
}
