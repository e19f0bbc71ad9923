//! The image configuration (`application/vnd.oci.image.config.v1+json`) with
//! Docker's extensions (`Healthcheck`, `OnBuild`, `Shell`), which `oci-spec`'s
//! types do not carry. Unknown fields are kept (`extra`), so that a config
//! read from elsewhere and written again keeps them; but the image ID is
//! always computed from the bytes as stored, never from a re-serialisation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "ContainerConfig::is_empty")]
    pub config: ContainerConfig,
    #[serde(default, deserialize_with = "nullable")]
    pub rootfs: RootFs,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// What a container of the image runs with (Docker's field names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
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
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub start_interval: u64,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".to_string(), diff_ids: Vec::new() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
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
