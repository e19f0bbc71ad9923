//! Authentication with a registry, as Docker's token protocol describes it.
//!
//! - A registry says how to authenticate in `WWW-Authenticate` on a 401:
//!   `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
//! - Basic sends the credentials with every request.
//! - Bearer asks the realm for a token for the service and the scopes the
//!   request needs (`repository:team/app:pull,push`), with the credentials
//!   (HTTP Basic, or an OAuth2 refresh-token grant with an identity token),
//!   or anonymously without them. Tokens are cached per registry and scope
//!   set for their lifetime and fetched again after a 401.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use ureq::http::{Method, StatusCode};

use super::RegistryError;
use super::credentials::Credentials;
use super::transport::{Request, Transport};

/// How a registry asks to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic.
    Basic,
    /// A bearer token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter.
        service: Option<String>,
        /// The scope the challenged request needed, if the registry said.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value; `None` for schemes hoist does not
    /// speak.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => None,
        }
    }
}

/// `key=value` and `key="quoted \" value"` pairs separated by commas.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.trim().is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value =
                std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string();
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    params
}

/// A token and when to stop using it.
#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// What hoist knows of each registry's authentication during one run.
#[derive(Default)]
pub struct Authenticator {
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<(String, String), Token>>,
}

impl Authenticator {
    /// Remembers how `host` asked to be authenticated.
    pub fn learn(&self, host: &str, challenge: Challenge) {
        self.challenges.lock().unwrap().insert(host.to_string(), challenge);
    }

    /// Whether `host` has said how it authenticates.
    pub fn knows(&self, host: &str) -> bool {
        self.challenges.lock().unwrap().contains_key(host)
    }

    /// Forgets the tokens of `host` for `scopes` (after a 401).
    pub fn forget(&self, host: &str, scopes: &[String]) {
        self.tokens.lock().unwrap().remove(&(host.to_string(), scopes.join(" ")));
    }

    /// The Authorization header for a request to `host` needing `scopes`,
    /// or `None` when the registry has asked for nothing (yet).
    pub fn header(
        &self,
        transport: &Transport,
        host: &str,
        scopes: &[String],
        credentials: Option<&Credentials>,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = self.challenges.lock().unwrap().get(host).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(credentials
                .map(|c| format!("Basic {}", BASE64.encode(format!("{}:{}", c.username, c.secret))))),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = (host.to_string(), scopes.join(" "));
                if let Some(token) =
                    self.tokens.lock().unwrap().get(&key).filter(|t| t.expires > Instant::now())
                {
                    return Ok(Some(format!("Bearer {}", token.value)));
                }
                let token = fetch_token(transport, host, &realm, service.as_deref(), scopes, credentials)?;
                let header = format!("Bearer {}", token.value);
                self.tokens.lock().unwrap().insert(key, token);
                Ok(Some(header))
            }
        }
    }
}

/// Asks `realm` for a token.
fn fetch_token(
    transport: &Transport,
    host: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credentials: Option<&Credentials>,
) -> Result<Token, RegistryError> {
    let realm_host = realm.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or(host).to_string();
    let mut query: Vec<(String, String)> = Vec::new();
    if let Some(service) = service {
        query.push(("service".into(), service.into()));
    }
    for scope in scopes {
        query.push(("scope".into(), scope.clone()));
    }
    let request = match credentials.and_then(|c| c.identity_token.as_deref()) {
        // OAuth2's refresh-token grant, as Docker does with an identity token.
        Some(refresh) => {
            query.push(("grant_type".into(), "refresh_token".into()));
            query.push(("refresh_token".into(), refresh.into()));
            query.push(("client_id".into(), "hoist".into()));
            Request::new(Method::POST, realm.to_string())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_encode(&query).into_bytes())
        }
        None => {
            let separator = if realm.contains('?') { '&' } else { '?' };
            let url = if query.is_empty() {
                realm.to_string()
            } else {
                format!("{realm}{separator}{}", form_encode(&query))
            };
            let mut request = Request::new(Method::GET, url);
            if let Some(c) = credentials {
                request = request.header(
                    "Authorization",
                    format!("Basic {}", BASE64.encode(format!("{}:{}", c.username, c.secret))),
                );
            }
            request
        }
    };
    let requested = Instant::now();
    let response = transport.send(&realm_host, &request)?;
    let status = response.status();
    let mut body = response.into_body();
    let bytes = body.with_config().limit(1 << 20).read_to_vec().unwrap_or_default();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized {
            registry: host.to_string(),
            with_credentials: credentials.is_some(),
        });
    }
    if !status.is_success() {
        return Err(RegistryError::Registry {
            registry: host.to_string(),
            status: status.as_u16(),
            message: format!("the token server {realm} answered {status}"),
        });
    }
    let answer: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Registry {
        registry: host.to_string(),
        status: status.as_u16(),
        message: format!("the token server {realm} sent no token: {e}"),
    })?;
    let value = answer.token.or(answer.access_token).filter(|t| !t.is_empty()).ok_or_else(|| {
        RegistryError::Registry {
            registry: host.to_string(),
            status: status.as_u16(),
            message: format!("the token server {realm} sent an empty token"),
        }
    })?;
    // Docker's default lifetime is 60 s; stop ten seconds early.
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(20));
    Ok(Token { value, expires: requested + lifetime - Duration::from_secs(10) })
}

/// `application/x-www-form-urlencoded`.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_read_realm_service_and_scope() {
        let challenge = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            challenge,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
    }

    #[test]
    fn basic_and_unknown_schemes() {
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None, "a bearer challenge needs a realm");
    }

    #[test]
    fn quoted_values_keep_commas_and_escapes() {
        let params = parse_params(r#"realm="a,b", service=plain , scope="x\"y""#);
        assert_eq!(params["realm"], "a,b");
        assert_eq!(params["service"], "plain");
        assert_eq!(params["scope"], "x\"y");
    }

    #[test]
    fn form_values_are_percent_encoded() {
        let pairs = [("scope".to_string(), "repository:a/b:pull,push".to_string())];
        assert_eq!(form_encode(&pairs), "scope=repository%3Aa%2Fb%3Apull%2Cpush");
    }
}
