//! A real OCI registry for tests: CNCF distribution 2.8 (`docker-registry`
//! from Debian) on 127.0.0.1, one process per `TestRegistry`, with its
//! storage, config and log in a temp dir, killed and waited for on drop.
//!
//! Three ways to start one: `anonymous()` (plain HTTP, no auth),
//! `basic_tls(user, password)` (htpasswd Basic auth over TLS with a CA made
//! for the test) and `token(users)` (Bearer tokens from a `TokenServer`).
//! skopeo talks to any of them with `skopeo_args`; `busybox_oci_layout`
//! makes a small image to copy in.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::certificates::ServerCertificate;
use super::http::ResponseHead;
use super::loopback::{accepts, free_port};
use super::token_server::{Access, TOKEN_ISSUER, TOKEN_SERVICE, TokenServer};

/// Which of skopeo's flag families to emit: `--src-…`, `--dest-…`, or the unprefixed
/// ones of commands that take one image (`inspect`, `delete`, `list-tags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkopeoSide {
    /// `skopeo copy`'s source (`--src-tls-verify`, `--src-cert-dir`, `--src-creds`).
    Source,
    /// `skopeo copy`'s destination (`--dest-…`).
    Destination,
    /// A one-image command (`--tls-verify`, `--cert-dir`, `--creds`).
    Alone,
}

/// A running `docker-registry`; stopped when dropped.
pub struct TestRegistry {
    // Killed before `dir` (its storage and log) is removed: fields drop in order.
    process: RegistryProcess,
    port: u16,
    tls: Option<ServerCertificate>,
    credentials: Option<(String, String)>,
    token_server: Option<TokenServer>,
    dir: tempfile::TempDir,
}

enum Auth<'a> {
    None,
    Htpasswd,
    Token(&'a TokenServer),
}

impl TestRegistry {
    /// Plain HTTP, no authentication.
    pub fn anonymous() -> TestRegistry {
        TestRegistry::start(None, None, false)
    }

    /// HTTPS with a certificate for 127.0.0.1 from a CA made for this registry,
    /// and htpasswd (bcrypt) Basic auth for the one `user`.
    pub fn basic_tls(user: &str, password: &str) -> TestRegistry {
        TestRegistry::start(Some((user.into(), password.into())), None, true)
    }

    /// Plain HTTP with token auth, served by a `TokenServer` that knows `users`
    /// (name, password, access); skopeo's default credentials are the first user's.
    pub fn token(users: &[(&str, &str, Access)]) -> TestRegistry {
        let server = TokenServer::start(users);
        let credentials = users.first().map(|(u, p, _)| (u.to_string(), p.to_string()));
        TestRegistry::start(credentials, Some(server), false)
    }

    fn start(
        credentials: Option<(String, String)>,
        token_server: Option<TokenServer>,
        tls: bool,
    ) -> TestRegistry {
        let dir = tempfile::Builder::new().prefix("hoist-registry-").tempdir().unwrap();
        let tls = tls.then(|| ServerCertificate::generate(&dir.path().join("tls")));
        let auth = match (&token_server, &credentials) {
            (Some(server), _) => Auth::Token(server),
            (None, Some((user, password))) => {
                let hash = bcrypt::hash_with_result(password, 4)
                    .expect("bcrypt hashes")
                    .format_for_version(bcrypt::Version::TwoY);
                std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
                Auth::Htpasswd
            }
            (None, None) => Auth::None,
        };
        std::fs::create_dir_all(dir.path().join("certs.d")).unwrap();
        // The port is free when chosen but another test may take it before the
        // registry binds it; that shows as "address already in use", and a new port fixes it.
        for _attempt in 0..5 {
            let port = free_port();
            let config = config_yaml(dir.path(), port, tls.as_ref(), &auth);
            std::fs::write(dir.path().join("config.yml"), config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut command = Command::new("docker-registry");
            command
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            // distribution lets REGISTRY_* variables override any config field.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(name);
                }
            }
            let mut process =
                RegistryProcess(command.spawn().unwrap_or_else(|e| {
                    panic!("docker-registry runs ({e}): install Debian's docker-registry")
                }));
            if process.wait_until_serving(port, tls.is_some(), dir.path()) {
                let registry = TestRegistry { process, port, tls, credentials, token_server, dir };
                if registry.tls.is_some() {
                    registry.trust_as(&registry.host());
                }
                return registry;
            }
        }
        panic!("docker-registry found no free port in 5 attempts");
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// `127.0.0.1:PORT/NAME`: a reference to `name` (`repo:tag` or `repo@digest`) in this registry.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// Everything the registry logged so far (its access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The file the registry logs to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Where the registry keeps its blobs and manifests.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A directory laid out like `/etc/docker/certs.d`: `<dir>/127.0.0.1:PORT/ca.crt`
    /// for a TLS registry, empty otherwise (for `HOIST_CERTS_DIR`).
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// The CA certificate that signed a TLS registry's certificate (for curl's `--cacert`).
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// Adds `<certs_dir>/<host>/ca.crt`, so a client that reaches this registry under
    /// another name (`registry.hoist.test:5000` through a proxy) trusts it too.
    pub fn trust_as(&self, host: &str) {
        let ca = self.ca_file().expect("trust_as needs a TLS registry");
        let dir = self.certs_dir().join(host);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    }

    /// The user and password it was started with (the first user of a token registry).
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The token server of a `token` registry.
    pub fn token_server(&self) -> &TokenServer {
        self.token_server.as_ref().expect("only a TestRegistry::token registry has a token server")
    }

    /// skopeo's TLS, CA and credential flags for this registry, as its default user.
    pub fn skopeo_args(&self, side: SkopeoSide) -> Vec<String> {
        let credentials = self.credentials();
        self.skopeo_flags(side, credentials)
    }

    /// Like `skopeo_args`, logging in as `user` (`None`: anonymously).
    pub fn skopeo_args_as(&self, side: SkopeoSide, user: Option<(&str, &str)>) -> Vec<String> {
        self.skopeo_flags(side, user)
    }

    fn skopeo_flags(&self, side: SkopeoSide, user: Option<(&str, &str)>) -> Vec<String> {
        let prefix = match side {
            SkopeoSide::Source => "--src-",
            SkopeoSide::Destination => "--dest-",
            SkopeoSide::Alone => "--",
        };
        let mut flags = Vec::new();
        if self.tls.is_some() {
            flags.push(format!("{prefix}tls-verify=true"));
            flags.push(format!("{prefix}cert-dir={}", self.certs_dir().join(self.host()).display()));
        } else {
            flags.push(format!("{prefix}tls-verify=false"));
        }
        match user {
            Some((name, password)) => flags.push(format!("{prefix}creds={name}:{password}")),
            // Without this skopeo would use whatever the machine's auth files hold.
            None => flags.push(format!("{prefix}no-creds")),
        }
        flags
    }

    /// Copies `source` (any skopeo reference, e.g. from `busybox_oci_layout`) to `NAME`
    /// in this registry as the default user; panics with skopeo's output on failure.
    pub fn push_with_skopeo(&self, source: &str, name: &str) {
        let destination = format!("docker://{}", self.reference(name));
        let mut args = vec!["copy".to_string()];
        args.extend(self.skopeo_args(SkopeoSide::Destination));
        args.extend([source.to_string(), destination]);
        skopeo_ok(&args);
    }

    /// Copies `NAME` from this registry to `destination` (a skopeo reference) as the default user.
    pub fn pull_with_skopeo(&self, name: &str, destination: &str) {
        let source = format!("docker://{}", self.reference(name));
        let mut args = vec!["copy".to_string()];
        args.extend(self.skopeo_args(SkopeoSide::Source));
        args.extend([source, destination.to_string()]);
        skopeo_ok(&args);
    }
}

/// The registry's process, killed and reaped when dropped, also while a
/// start-up wait panics.
struct RegistryProcess(Child);

impl RegistryProcess {
    /// Waits until the registry answers; false when it exited because its port was taken.
    fn wait_until_serving(&mut self, port: u16, tls: bool, dir: &Path) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = || std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // TLS is ready once it accepts; plain HTTP must also answer GET /v2/.
            if accepts(addr) && (tls || answers_v2(addr)) {
                return true;
            }
            if let Some(status) = self.0.try_wait().unwrap() {
                let log = log();
                if log.contains("address already in use") {
                    return false;
                }
                panic!("docker-registry exited ({status}) before serving; its log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {addr} in 30 s; its log:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config_yaml(dir: &Path, port: u16, tls: Option<&ServerCertificate>, auth: &Auth) -> String {
    let storage = dir.join("storage");
    // Upload purging would delete uploads a slow test leaves open; a fixed
    // secret spares every log distribution's warning about a random one.
    let mut config = format!(
        r#"version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: "{storage}"
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: hoist-test-upload-state-secret
"#,
        storage = storage.display()
    );
    if let Some(tls) = tls {
        config += &format!(
            r#"  tls:
    certificate: "{}"
    key: "{}"
"#,
            tls.cert.display(),
            tls.key.display()
        );
    }
    match auth {
        Auth::None => {}
        Auth::Htpasswd => {
            config += &format!(
                r#"auth:
  htpasswd:
    realm: hoist-test-registry
    path: "{}"
"#,
                dir.join("htpasswd").display()
            );
        }
        Auth::Token(server) => {
            config += &format!(
                r#"auth:
  token:
    realm: "{}"
    service: {TOKEN_SERVICE}
    issuer: {TOKEN_ISSUER}
    rootcertbundle: "{}"
"#,
                server.realm(),
                server.root_cert_bundle().display()
            );
        }
    }
    config
}

/// Whether a plain-HTTP server on `addr` answers `GET /v2/` with any status.
fn answers_v2(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    ResponseHead::read(&mut BufReader::new(stream)).is_ok()
}

/// Runs `skopeo ARGS…`; panics with a clear reason when skopeo is missing.
pub fn skopeo(args: &[String]) -> Output {
    Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("skopeo runs ({e}): install Debian's skopeo"))
}

/// Runs `skopeo ARGS…`, panicking with its output unless it succeeds; returns stdout.
pub fn skopeo_ok(args: &[String]) -> String {
    let out = skopeo(args);
    assert!(
        out.status.success(),
        "skopeo {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes a one-layer busybox image as an OCI layout under `work` (from
/// `busybox_rootfs`, through skopeo's `tarball:` transport) and returns its
/// skopeo reference, `oci:<work>/busybox-oci:busybox`.
pub fn busybox_oci_layout(work: &Path) -> String {
    let rootfs = super::busybox_rootfs(work);
    let reference = format!("oci:{}:busybox", work.join("busybox-oci").display());
    skopeo_ok(&["copy".into(), format!("tarball:{}", rootfs.display()), reference.clone()]);
    reference
}

/// Runs `curl ARGS…` (always with `--silent --show-error`); panics with a clear reason when curl is missing.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("curl runs ({e}): install Debian's curl"))
}
