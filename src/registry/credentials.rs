//! Credentials in Docker's client config, so that `docker login` and
//! `hoist login` share them.
//!
//! - `auths`: `{"<registry>": {"auth": base64("user:password")}}`, or an
//!   `identitytoken` for registries that issue refresh tokens.
//! - `credHelpers` (per registry) and `credsStore` (all registries): a
//!   `docker-credential-<name>` program speaking Docker's credential-helper
//!   protocol (`get`, `store`, `erase` on standard input/output).
//! - Docker Hub is keyed `https://index.docker.io/v1/`, as Docker keys it.
//!
//! A password is never part of an error message or of anything printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

/// The key Docker files Docker Hub's credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What authenticates a client to a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (`<token>` with an identity token).
    pub username: String,
    /// The password or access token.
    pub secret: String,
    /// A refresh token for the registry's OAuth2 token endpoint.
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The config file could not be read or written.
    #[error("{}: {message}", path.display())]
    File {
        /// The config file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A credential helper failed.
    #[error("docker-credential-{helper} {action}: {message}")]
    Helper {
        /// Its name (after `docker-credential-`).
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// What it said (never the secret).
        message: String,
    },
}

/// The key a registry's credentials are filed under.
pub fn key_for(registry: &str) -> String {
    if registry == crate::image::reference::DEFAULT_DOMAIN || registry == "index.docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// A key as written by any client reduced to its host: `https://r:5000/v1/`
/// is `r:5000`.
fn host_of_key(key: &str) -> &str {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Docker's client config file.
pub struct DockerConfig {
    path: PathBuf,
    /// The whole document, so that writing keeps what hoist does not read.
    document: Map<String, Value>,
    /// Where credential helpers are; `None`: on `PATH`, as Docker finds them.
    helper_dir: Option<PathBuf>,
}

impl DockerConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn open(path: &Path) -> Result<DockerConfig, CredentialsError> {
        let error = |message: String| CredentialsError::File { path: path.to_path_buf(), message };
        let document = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(error("not a JSON object".into())),
                Err(e) => return Err(error(format!("not valid JSON: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(error(e.to_string())),
        };
        Ok(DockerConfig { path: path.to_path_buf(), document, helper_dir: None })
    }

    /// Runs credential helpers from `dir` instead of `PATH`.
    pub fn with_helper_dir(mut self, dir: &Path) -> DockerConfig {
        self.helper_dir = Some(dir.to_path_buf());
        self
    }

    fn helper(&self, name: String) -> Helper {
        let program = match &self.helper_dir {
            Some(dir) => dir.join(format!("docker-credential-{name}")),
            None => PathBuf::from(format!("docker-credential-{name}")),
        };
        Helper { name, program }
    }

    /// The config file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let helpers = self.document.get("credHelpers").and_then(Value::as_object);
        let specific = helpers.and_then(|h| {
            h.iter()
                .find(|(k, _)| host_of_key(k) == host_of_key(&key_for(registry)))
                .and_then(|(_, v)| v.as_str())
        });
        specific
            .or_else(|| self.document.get("credsStore").and_then(Value::as_str))
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.document.get("auths").and_then(Value::as_object)
    }

    /// The credentials for `registry`, if any are configured.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        let key = key_for(registry);
        if let Some(helper) = self.helper_for(registry) {
            return self.helper(helper).get(&key);
        }
        let Some(auths) = self.auths() else { return Ok(None) };
        let entry = auths
            .get(&key)
            .or_else(|| auths.iter().find(|(k, _)| host_of_key(k) == host_of_key(&key)).map(|(_, v)| v));
        let Some(entry) = entry.and_then(Value::as_object) else { return Ok(None) };
        let identity_token = entry.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty());
        let (mut username, mut secret) = (String::new(), String::new());
        if let Some(auth) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            let decoded =
                BASE64.decode(auth.trim()).ok().and_then(|d| String::from_utf8(d).ok()).ok_or_else(|| {
                    CredentialsError::File {
                        path: self.path.clone(),
                        message: format!("the auth entry of {key} is not base64 of user:password"),
                    }
                })?;
            let (user, password) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
            username = user.to_string();
            secret = password.to_string();
        } else if let (Some(user), Some(password)) =
            (entry.get("username").and_then(Value::as_str), entry.get("password").and_then(Value::as_str))
        {
            username = user.to_string();
            secret = password.to_string();
        }
        if username.is_empty() && identity_token.is_none() {
            return Ok(None);
        }
        Ok(Some(Credentials { username, secret, identity_token: identity_token.map(str::to_string) }))
    }

    /// Files credentials for `registry`: through its helper when one is
    /// configured, else in `auths`; writes the file atomically (0600).
    pub fn store(&mut self, registry: &str, credentials: &Credentials) -> Result<(), CredentialsError> {
        let key = key_for(registry);
        if let Some(helper) = self.helper_for(registry) {
            return self.helper(helper).store(&key, credentials);
        }
        let auths = self.document.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let auths = auths.as_object_mut().expect("made an object");
        let mut entry = Map::new();
        entry.insert(
            "auth".into(),
            Value::String(BASE64.encode(format!("{}:{}", credentials.username, credentials.secret))),
        );
        if let Some(token) = &credentials.identity_token {
            entry.insert("identitytoken".into(), Value::String(token.clone()));
        }
        auths.insert(key, Value::Object(entry));
        self.write()
    }

    /// Removes the credentials for `registry`; false when there were none.
    pub fn erase(&mut self, registry: &str) -> Result<bool, CredentialsError> {
        let key = key_for(registry);
        if let Some(helper) = self.helper_for(registry) {
            return self.helper(helper).erase(&key);
        }
        let removed = match self.document.get_mut("auths").and_then(Value::as_object_mut) {
            Some(auths) => {
                let keys: Vec<String> =
                    auths.keys().filter(|k| host_of_key(k) == host_of_key(&key)).cloned().collect();
                for k in &keys {
                    auths.remove(k);
                }
                !keys.is_empty()
            }
            None => false,
        };
        if removed {
            self.write()?;
        }
        Ok(removed)
    }

    fn write(&self) -> Result<(), CredentialsError> {
        use std::os::unix::fs::OpenOptionsExt;
        let error =
            |e: std::io::Error| CredentialsError::File { path: self.path.clone(), message: e.to_string() };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(error)?;
        let temp = dir.join(format!(".config.json.hoist-{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&Value::Object(self.document.clone())).expect("json");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(&bytes)?;
                file.write_all(b"\n")?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(error)
    }
}

/// A `docker-credential-<name>` program.
struct Helper {
    name: String,
    program: PathBuf,
}

impl Helper {
    fn fail(&self, action: &'static str, message: String) -> CredentialsError {
        CredentialsError::Helper { helper: self.name.clone(), action, message }
    }

    /// Runs `<program> <action>` with `input` on its standard input; its
    /// standard output, or what it said went wrong.
    fn run(&self, action: &'static str, input: &[u8]) -> Result<Result<Vec<u8>, String>, CredentialsError> {
        let mut child = Command::new(&self.program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.fail(action, format!("cannot run {}: {e}", self.program.display())))?;
        let written = child.stdin.take().expect("piped").write_all(input);
        let out = child.wait_with_output().map_err(|e| self.fail(action, e.to_string()))?;
        if out.status.success() {
            written.map_err(|e| self.fail(action, e.to_string()))?;
            return Ok(Ok(out.stdout));
        }
        let message = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let message = if message.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            message
        };
        Ok(Err(message))
    }

    fn get(&self, key: &str) -> Result<Option<Credentials>, CredentialsError> {
        match self.run("get", key.as_bytes())? {
            Ok(out) => {
                let value: BTreeMap<String, Value> = serde_json::from_slice(&out)
                    .map_err(|e| self.fail("get", format!("its answer is not JSON: {e}")))?;
                let text =
                    |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
                let (username, secret) = (text("Username"), text("Secret"));
                Ok(Some(if username == "<token>" {
                    Credentials { username, secret: String::new(), identity_token: Some(secret) }
                } else {
                    Credentials { username, secret, identity_token: None }
                }))
            }
            // The protocol's answer for a registry it has nothing for.
            Err(message) if message.contains("credentials not found") => Ok(None),
            Err(message) => Err(self.fail("get", message)),
        }
    }

    fn store(&self, key: &str, credentials: &Credentials) -> Result<(), CredentialsError> {
        let (username, secret) = match &credentials.identity_token {
            Some(token) => ("<token>", token.as_str()),
            None => (credentials.username.as_str(), credentials.secret.as_str()),
        };
        let input = serde_json::json!({ "ServerURL": key, "Username": username, "Secret": secret });
        match self.run("store", input.to_string().as_bytes())? {
            Ok(_) => Ok(()),
            Err(message) => Err(self.fail("store", message)),
        }
    }

    fn erase(&self, key: &str) -> Result<bool, CredentialsError> {
        match self.run("erase", key.as_bytes())? {
            Ok(_) => Ok(true),
            Err(message) if message.contains("credentials not found") => Ok(false),
            Err(message) => Err(self.fail("erase", message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        let config = DockerConfig::open(&path).unwrap();
        (dir, config)
    }

    fn creds(user: &str, secret: &str) -> Credentials {
        Credentials { username: user.into(), secret: secret.into(), identity_token: None }
    }

    #[test]
    fn auths_are_read_by_registry_and_docker_hub_by_its_key() {
        let hub = BASE64.encode("me:hub-secret");
        let local = BASE64.encode("you:pw:with:colons");
        let (_dir, config) = config(&format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{hub}"}},"https://r.example:5000/v1/":{{"auth":"{local}"}}}}}}"#
        ));
        assert_eq!(config.get("docker.io").unwrap(), Some(creds("me", "hub-secret")));
        assert_eq!(config.get("r.example:5000").unwrap(), Some(creds("you", "pw:with:colons")));
        assert_eq!(config.get("other.example").unwrap(), None);
    }

    #[test]
    fn storing_keeps_the_rest_of_the_file_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, mut config) = config(r#"{"psFormat":"table","auths":{}}"#);
        config.store("localhost:5000", &creds("u", "p")).unwrap();
        let again = DockerConfig::open(config.path()).unwrap();
        assert_eq!(again.get("localhost:5000").unwrap(), Some(creds("u", "p")));
        assert_eq!(again.document["psFormat"], "table");
        let mode = std::fs::metadata(config.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn erasing_removes_every_spelling_of_the_registry() {
        let auth = BASE64.encode("u:p");
        let (_dir, mut config) = config(&format!(
            r#"{{"auths":{{"r:1":{{"auth":"{auth}"}},"https://r:1":{{"auth":"{auth}"}}}}}}"#
        ));
        assert!(config.erase("r:1").unwrap());
        assert_eq!(DockerConfig::open(config.path()).unwrap().get("r:1").unwrap(), None);
        assert!(!config.erase("r:1").unwrap());
    }

    #[test]
    fn a_helper_is_asked_through_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-fake");
        std::fs::write(
            &script,
            "#!/bin/sh\nread key\ncase \"$1 $key\" in\n  'get r:1') echo '{\"Username\":\"h\",\"Secret\":\"s\"}' ;;\n  get*) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let (_d, config) = config(r#"{"credHelpers":{"r:1":"fake"},"credsStore":"fake"}"#);
        let config = config.with_helper_dir(dir.path());
        assert_eq!(config.get("r:1").unwrap(), Some(creds("h", "s")));
        assert_eq!(config.get("r:2").unwrap(), None);
    }

    #[test]
    fn credentials_never_print_their_secret() {
        let text = format!("{:?}", creds("user", "hunter2"));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
