//! A token server for Docker's registry token protocol, written for the
//! tests so they can see and steer every token a client asks for.
//!
//! `GET /token?service=…&scope=…&scope=…` with optional HTTP Basic
//! credentials (and the OAuth2 form `POST /token` with
//! `grant_type=password`) answers `{"token", "access_token", "expires_in",
//! "issued_at"}`. The token is a JWT signed with ES256 whose header carries
//! the signing certificate in `x5c`: distribution 2.8 (`registry/auth/token`)
//! checks that the issuer and audience match its config, that `exp`/`nbf`
//! hold (with 60 s leeway), that the `x5c` leaf chains to a certificate in
//! its `rootcertbundle`, and that the signature verifies with the leaf's key;
//! then it grants a request only if the token's `access` claim lists every
//! action the request needs (`pull` for GET/HEAD, `pull`+`push` for
//! POST/PUT/PATCH, `delete` for DELETE).
//!
//! Each user has one `Access` for every repository; a request without
//! credentials gets the anonymous access (nothing unless set). Wrong
//! credentials are a 401. Every request is recorded without its password.

use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use super::certificates::TokenSigningKey;
use super::http::{RequestHead, query_pairs, read_body, write_bad_request, write_response};
use super::loopback::{Connections, LoopbackServer};

/// The `service` the token server issues tokens for (the registry's `auth.token.service`).
pub const TOKEN_SERVICE: &str = "hoist-test-registry";
/// The `iss` of every token (the registry's `auth.token.issuer`).
pub const TOKEN_ISSUER: &str = "hoist-test-token-server";

/// What a user may do on every repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No action at all: tokens carry an empty grant.
    Nothing,
    /// `pull` only.
    Pull,
    /// `pull` and `push`.
    PullPush,
    /// `pull`, `push` and `delete`.
    PullPushDelete,
}

impl Access {
    fn actions(self) -> &'static [&'static str] {
        match self {
            Access::Nothing => &[],
            Access::Pull => &["pull"],
            Access::PullPush => &["pull", "push"],
            Access::PullPushDelete => &["pull", "push", "delete"],
        }
    }
}

/// One request the token server answered, as a test sees it.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The request target, query included (a POST's form, which holds the password, is not).
    pub path_and_query: String,
    /// The user the client authenticated as (also when the password was wrong); `None` when anonymous.
    pub user: Option<String>,
    /// The `service` parameter as sent.
    pub service: Option<String>,
    /// Every scope asked for, one per entry (`repository:name:pull,push`).
    pub scopes: Vec<String>,
    /// Every scope granted, with the actions granted (`repository:name:pull`).
    pub granted: Vec<String>,
    /// The status of the answer (200, 401, 400, 404).
    pub status: u16,
}

/// The token server; stops when dropped.
pub struct TokenServer {
    server: LoopbackServer,
    state: Arc<State>,
    cert_pem: PathBuf,
    _dir: tempfile::TempDir,
}

struct State {
    users: Vec<(String, String, Access)>,
    anonymous: Mutex<Access>,
    expires_in: AtomicU64,
    requests: Mutex<Vec<TokenRequest>>,
    key: EcdsaKeyPair,
    x5c: String,
    rng: SystemRandom,
    next_jti: AtomicU64,
}

impl TokenServer {
    /// Starts a token server on 127.0.0.1 for `users` (name, password, access),
    /// with a fresh signing key; tokens last 300 s and anonymous clients get nothing.
    pub fn start(users: &[(&str, &str, Access)]) -> TokenServer {
        let dir = tempfile::Builder::new().prefix("hoist-token-server-").tempdir().unwrap();
        let signing = TokenSigningKey::generate(dir.path());
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &signing.pkcs8_der, &rng)
            .expect("ring loads openssl's PKCS#8 P-256 key");
        let state = Arc::new(State {
            users: users.iter().map(|(u, p, a)| (u.to_string(), p.to_string(), *a)).collect(),
            anonymous: Mutex::new(Access::Nothing),
            expires_in: AtomicU64::new(300),
            requests: Mutex::new(Vec::new()),
            key,
            x5c: STANDARD.encode(&signing.cert_der),
            rng,
            next_jti: AtomicU64::new(1),
        });
        let serving = state.clone();
        let server = LoopbackServer::start(move |stream, connections| serve(stream, connections, &serving));
        TokenServer { server, state, cert_pem: signing.cert_pem, _dir: dir }
    }

    /// `http://127.0.0.1:PORT/token`, the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The PEM certificate the registry must trust (`auth.token.rootcertbundle`).
    pub fn root_cert_bundle(&self) -> &Path {
        &self.cert_pem
    }

    /// Sets the `expires_in` of later tokens (and their `exp`), e.g. to force a client to refresh.
    /// Distribution still accepts a token 60 s past its `exp`.
    pub fn set_expires_in(&self, seconds: u64) {
        self.state.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// Sets what clients without credentials are granted.
    pub fn set_anonymous(&self, access: Access) {
        *self.state.anonymous.lock().unwrap() = access;
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Forgets the recorded requests, to assert on one step of a test alone.
    pub fn clear_requests(&self) {
        self.state.requests.lock().unwrap().clear();
    }
}

fn serve(stream: TcpStream, connections: &Connections, state: &State) {
    let _tracked = connections.track(&stream);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut head = match RequestHead::read(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => return write_bad_request(&mut writer, &e),
        };
        if head.continue_if_expected(&mut writer).is_err() {
            return;
        }
        let body = match read_body(&mut reader, head.framing()) {
            Ok(body) => body,
            Err(e) => return write_bad_request(&mut writer, &e),
        };
        let (status, json, mut record) = state.answer(&head, &body);
        record.status = status;
        state.requests.lock().unwrap().push(record);
        let reason = match status {
            200 => "OK",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Bad Request",
        };
        let mut headers = vec![("Content-Type", "application/json")];
        if status == 401 {
            headers.push(("WWW-Authenticate", "Basic realm=\"hoist test token server\""));
        }
        let close = head.wants_close();
        if close {
            headers.push(("Connection", "close"));
        }
        let body = serde_json::to_vec(&json).unwrap();
        if write_response(&mut writer, status, reason, &headers, &body).is_err() || close {
            return;
        }
    }
}

impl State {
    fn answer(&self, head: &RequestHead, body: &[u8]) -> (u16, serde_json::Value, TokenRequest) {
        let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
        let mut record = TokenRequest {
            method: head.method.clone(),
            path_and_query: head.target.clone(),
            user: None,
            service: None,
            scopes: Vec::new(),
            granted: Vec::new(),
            status: 0,
        };
        let error =
            |code: &str, message: &str| serde_json::json!({"errors": [{"code": code, "message": message}]});
        if path != "/token" {
            return (404, error("NOT_FOUND", "the token endpoint is /token"), record);
        }
        let (params, credentials) = match head.method.as_str() {
            "GET" => (query_pairs(query), basic_credentials(head)),
            "POST" => {
                let form = query_pairs(&String::from_utf8_lossy(body));
                let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                if field("grant_type").as_deref() != Some("password") {
                    return (400, serde_json::json!({"error": "unsupported_grant_type"}), record);
                }
                let credentials = field("username").zip(field("password"));
                (form, credentials)
            }
            _ => return (404, error("UNSUPPORTED", "GET or POST /token"), record),
        };
        record.service = params.iter().find(|(n, _)| n == "service").map(|(_, v)| v.clone());
        record.scopes = params
            .iter()
            .filter(|(n, _)| n == "scope")
            .flat_map(|(_, v)| v.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>())
            .collect();
        let (subject, access) = match credentials {
            None => (String::new(), *self.anonymous.lock().unwrap()),
            Some((user, password)) => {
                record.user = Some(user.clone());
                match self.users.iter().find(|(u, p, _)| *u == user && *p == password) {
                    Some((_, _, access)) => (user, *access),
                    None => return (401, error("UNAUTHORIZED", "wrong user name or password"), record),
                }
            }
        };
        let mut claims_access = Vec::new();
        for scope in &record.scopes {
            let Some((kind, name, actions)) = parse_scope(scope) else { continue };
            let granted: Vec<&str> = if kind == "registry" && name == "catalog" {
                if access == Access::Nothing { vec![] } else { vec!["*"] }
            } else if kind == "repository" || kind.starts_with("repository(") {
                let allowed = access.actions();
                let mut granted = Vec::new();
                for action in actions.split(',') {
                    let wanted: &[&str] = if action == "*" { allowed } else { &[action] };
                    for action in wanted {
                        if allowed.contains(action) && !granted.contains(action) {
                            granted.push(*action);
                        }
                    }
                }
                granted
            } else {
                vec![]
            };
            if !granted.is_empty() {
                record.granted.push(format!("{kind}:{name}:{}", granted.join(",")));
                claims_access.push(serde_json::json!({"type": kind, "name": name, "actions": granted}));
            }
        }
        let expires_in = self.expires_in.load(Ordering::SeqCst);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "exp": now + expires_in,
            "nbf": now,
            "iat": now,
            "jti": format!("hoist-test-{}", self.next_jti.fetch_add(1, Ordering::SeqCst)),
            "access": claims_access,
        });
        let token = self.sign(&claims);
        let answer = serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": rfc3339(now),
        });
        (200, answer, record)
    }

    /// A compact JWS: base64url(header).base64url(claims).base64url(r‖s).
    fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let signature = self.key.sign(&self.rng, signing_input.as_bytes()).expect("ES256 signing");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// `type:name:actions`, where the name may itself hold colons (a host with a port).
fn parse_scope(scope: &str) -> Option<(&str, &str, &str)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((kind, name, actions))
}

fn basic_credentials(head: &RequestHead) -> Option<(String, String)> {
    let value = head.headers.get("authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Seconds since the epoch as RFC 3339, as the token protocol's `issued_at`.
fn rfc3339(seconds: u64) -> String {
    hoist::image::time::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}
