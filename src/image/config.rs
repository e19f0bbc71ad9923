//! The image configuration (`application/vnd.oci.image.config.v1+json`) with Docker's extensions.
//!
//! - [`ImageConfig`]: the whole document; [`ImageConfig::new_for_host`]
//!   starts one for this machine.
//! - [`ContainerConfig`]: what a container runs with, including Docker's
//!   `Healthcheck`, `OnBuild` and `Shell`, which `oci-spec`'s types do not
//!   carry.
//! - [`RootFs`], [`History`], [`HealthConfig`], [`Empty`]: its parts.
//! - [`host_architecture`]: this machine's OCI architecture name.
//!
//! Unknown fields are kept (`extra`), so that a config read from elsewhere
//! and written again keeps them; but the image ID is always computed from the
//! bytes as stored, never from a re-serialisation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An image configuration: what the image runs with, its layers' diff IDs
/// and its history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was made, RFC 3339 (see [`super::time`]); `None` when
    /// unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made the image (`MAINTAINER`); `None` when not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The CPU architecture, in OCI names: `amd64`, `arm64`, …
    #[serde(default, deserialize_with = "nullable")]
    pub architecture: String,
    /// The operating system: `linux`.
    #[serde(default, deserialize_with = "nullable")]
    pub os: String,
    /// The CPU variant (`v8` for `arm64`); `None` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// What a container of the image runs with.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "ContainerConfig::is_empty")]
    pub config: ContainerConfig,
    /// The layers, by diff ID.
    #[serde(default, deserialize_with = "nullable")]
    pub rootfs: RootFs,
    /// One row per instruction that changed the image, oldest first, with
    /// or without a layer.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields this type does not know, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// What a container of the image runs with (Docker's field names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `USER`: `user[:group]`, by name or number; empty for root.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `EXPOSE`: ports as `port/protocol` (`80/tcp`).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `ENV`: `NAME=value` strings, one per name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ENTRYPOINT`: the executable and its first arguments; `None` when not
    /// set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`: the default command, or ENTRYPOINT's arguments; `None` when not
    /// set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`: mount points of anonymous volumes.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    /// `WORKDIR`: an absolute path; empty for `/`.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `LABEL`s: name to value.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`: a name (`SIGTERM`) or number; empty for the runtime's
    /// default.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Docker's `ArgsEscaped`: CMD and ENTRYPOINT are already escaped for a
    /// Windows command line; meaningless on Linux.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    /// `HEALTHCHECK`; `None` when the image has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `ONBUILD` triggers, as text, run by builds FROM this image.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// `SHELL`: the shell of shell-form commands; empty for `/bin/sh -c`.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
    /// Fields this type does not know, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ContainerConfig {
    fn is_empty(&self) -> bool {
        *self == ContainerConfig::default()
    }
}

/// `{}` in `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Docker's healthcheck; durations are integer nanoseconds, 0 = inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]` (no check), `["CMD", …]`, `["CMD-SHELL", "…"]`; empty to
    /// inherit.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Nanoseconds between two checks.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// Nanoseconds one check may run.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Nanoseconds after start in which failures do not count.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// Nanoseconds between checks during the start period.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub retries: u64,
}

/// Docker writes `null` for empty lists and maps; read it as empty.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The layers of the image, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The sha256 of each uncompressed layer tar (`sha256:<hex>`), bottom
    /// first.
    #[serde(default, deserialize_with = "nullable")]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".to_string(), diff_ids: Vec::new() }
    }
}

/// One row of an image's history, as `docker history` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran, RFC 3339; `None` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction that made the row, as text; `None` for an import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who made the row; `None` when not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A free-form note (`Imported from -`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step added no layer: the row matches no entry of
    /// `rootfs.diff_ids`.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The configuration of a new image for this machine, no layers yet.
    pub fn new_for_host() -> ImageConfig {
        ImageConfig {
            architecture: host_architecture().to_string(),
            os: "linux".to_string(),
            ..ImageConfig::default()
        }
    }
}

/// The OCI architecture name of this machine.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_read_as_empty() {
        let text = r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":null,"OnBuild":null,"Labels":null,"Volumes":null},"rootfs":{"type":"layers","diff_ids":null},"history":null}"#;
        let config: ImageConfig = serde_json::from_str(text).unwrap();
        assert!(
            config.config.env.is_empty() && config.config.cmd.is_none() && config.rootfs.diff_ids.is_empty()
        );
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"architecture":"amd64","os":"linux","docker_version":"20.10","config":{"Hostname":"x","Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config: ImageConfig = serde_json::from_str(text).unwrap();
        let again = serde_json::to_value(&config).unwrap();
        assert_eq!(again["docker_version"], "20.10");
        assert_eq!(again["config"]["Hostname"], "x");
    }
}
