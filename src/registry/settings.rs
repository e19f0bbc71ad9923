//! Where registry settings come from, as Docker users already keep them.
//!
//! - hoist's config file (`$HOIST_CONFIG`, else `/etc/hoist/config.json` for
//!   root and `$XDG_CONFIG_HOME/hoist/config.json` or
//!   `~/.config/hoist/config.json` otherwise): `registry-mirrors` and
//!   `insecure-registries`, in `daemon.json`'s format.
//! - `/etc/docker/daemon.json` when present: the same two keys, after
//!   hoist's own.
//! - Docker's per-registry certificates: `$HOIST_CERTS_DIR`, else
//!   `/etc/docker/certs.d/<host[:port]>/` (`*.crt` CAs, `*.cert`/`*.key`
//!   client pairs).
//! - Docker's client config for credentials: `$DOCKER_CONFIG/config.json`,
//!   else `~/.docker/config.json`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Registry settings of one hoist process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Mirrors of Docker Hub, tried in order before it (`https://mirror…`).
    pub mirrors: Vec<String>,
    /// Registries reached over plain HTTP when HTTPS fails: `host[:port]`
    /// or a CIDR range (`10.0.0.0/8`). Loopback registries always are.
    pub insecure: Vec<String>,
    /// The folder of per-registry certificate folders.
    pub certs_dir: PathBuf,
    /// The folder holding Docker's `config.json`.
    pub docker_config_dir: PathBuf,
}

/// The part of a `daemon.json`-format file hoist reads.
#[derive(Debug, Default, Deserialize)]
struct DaemonJson {
    #[serde(default, rename = "registry-mirrors")]
    registry_mirrors: Vec<String>,
    #[serde(default, rename = "insecure-registries")]
    insecure_registries: Vec<String>,
}

/// A settings file that exists but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}; fix or remove the file", path.display())]
pub struct SettingsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl Settings {
    /// The settings from the environment and the files above; `insecure`
    /// adds registries given on the command line.
    pub fn load(insecure: &[String]) -> Result<Settings, SettingsError> {
        let mut settings = Settings {
            certs_dir: std::env::var_os("HOIST_CERTS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/docker/certs.d")),
            docker_config_dir: docker_config_dir(),
            insecure: insecure.to_vec(),
            ..Settings::default()
        };
        settings.read_file(&hoist_config_path())?;
        if std::env::var_os("HOIST_CONFIG").is_none() {
            settings.read_file(Path::new("/etc/docker/daemon.json"))?;
        }
        Ok(settings)
    }

    /// Adds the mirrors and insecure registries a `daemon.json`-format file
    /// lists, if it exists.
    pub fn read_file(&mut self, path: &Path) -> Result<(), SettingsError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SettingsError { path: path.to_path_buf(), message: e.to_string() }),
        };
        let file: DaemonJson = serde_json::from_slice(&bytes)
            .map_err(|e| SettingsError { path: path.to_path_buf(), message: e.to_string() })?;
        for mirror in file.registry_mirrors {
            let mirror = mirror.trim_end_matches('/').to_string();
            if !mirror.starts_with("http://") && !mirror.starts_with("https://") {
                return Err(SettingsError {
                    path: path.to_path_buf(),
                    message: format!("registry mirror {mirror:?} must be an http:// or https:// URL"),
                });
            }
            if !self.mirrors.contains(&mirror) {
                self.mirrors.push(mirror);
            }
        }
        for registry in file.insecure_registries {
            if !self.insecure.contains(&registry) {
                self.insecure.push(registry);
            }
        }
        Ok(())
    }

    /// Whether `host` (`name[:port]`) may be reached over plain HTTP:
    /// loopback, or listed as insecure by name or by an address range.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = host_name(host);
        if name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|entry| {
            let entry =
                entry.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
            entry == host
                || entry == name
                || match (entry.split_once('/'), name.parse::<IpAddr>()) {
                    (Some((network, bits)), Ok(ip)) => in_cidr(ip, network, bits),
                    _ => false,
                }
        })
    }

    /// The certificate folder for `host`.
    pub fn certs_for(&self, host: &str) -> PathBuf {
        self.certs_dir.join(host)
    }

    /// Docker's `config.json`.
    pub fn docker_config_file(&self) -> PathBuf {
        self.docker_config_dir.join("config.json")
    }
}

/// The host without its port (`[::1]:5000` is `::1`).
pub fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => name,
        _ => host,
    }
}

/// Whether `ip` is in the range `network/bits` (`10.0.0.0`, `8`).
pub(super) fn in_cidr(ip: IpAddr, network: &str, bits: &str) -> bool {
    let (Ok(network), Ok(bits)) = (network.parse::<IpAddr>(), bits.parse::<u32>()) else { return false };
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

/// hoist's own config file.
pub fn hoist_config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("HOIST_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if !crate::idmap::rootless() {
        return PathBuf::from("/etc/hoist/config.json");
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"));
    config.join("hoist/config.json")
}

fn docker_config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => home().join(".docker"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let settings = Settings {
            insecure: vec!["reg.lan:5000".into(), "10.1.0.0/16".into(), "http://plain.example".into()],
            ..Settings::default()
        };
        for host in
            ["127.0.0.1:5000", "localhost", "[::1]:5000", "reg.lan:5000", "10.1.2.3:80", "plain.example"]
        {
            assert!(settings.is_insecure(host), "{host}");
        }
        for host in ["reg.lan:5001", "10.2.0.1", "docker.io", "example.com:443"] {
            assert!(!settings.is_insecure(host), "{host}");
        }
    }

    #[test]
    fn a_daemon_json_adds_mirrors_and_insecure_registries_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        std::fs::write(
            &path,
            r#"{"registry-mirrors":["https://mirror.example/"],"insecure-registries":["r:1"],"debug":true}"#,
        )
        .unwrap();
        let mut settings = Settings::default();
        settings.read_file(&path).unwrap();
        settings.read_file(&path).unwrap();
        assert_eq!(settings.mirrors, vec!["https://mirror.example"]);
        assert_eq!(settings.insecure, vec!["r:1"]);
        settings.read_file(&dir.path().join("missing.json")).unwrap();
    }

    #[test]
    fn a_broken_settings_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"registry-mirrors":["mirror.example"]}"#).unwrap();
        let error = Settings::default().read_file(&path).unwrap_err();
        assert!(error.to_string().contains("config.json") && error.to_string().contains("http"), "{error}");
        std::fs::write(&path, "{").unwrap();
        assert!(Settings::default().read_file(&path).is_err());
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("a.b:5000"), "a.b");
        assert_eq!(host_name("[::1]:5000"), "::1");
        assert_eq!(host_name("docker.io"), "docker.io");
    }
}
