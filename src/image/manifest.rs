//! Manifests and indexes as registries serve them: OCI and Docker schema 2.
//!
//! - [`media_type`]: the media types hoist reads and writes.
//! - [`Document`]: a manifest body read as what its media type says: an
//!   image manifest, an index (manifest list), or refused (schema 1).
//! - [`Platform`] and [`Platform::choose`]: the manifest of a platform in an
//!   index, chosen as Docker chooses (os, architecture, variant, with
//!   containerd's normalisation of architecture names and default variants).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Media types.
pub mod media_type {
    /// An OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// An OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// A Docker schema 2 image manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// A Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker schema 1 manifests, which hoist refuses.
    pub const DOCKER_SCHEMA1: [&str; 2] = [
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ];
    /// An OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// A Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// A gzip-compressed Docker layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// What a client accepts when it asks for a manifest by tag.
    pub const ACCEPTED_MANIFESTS: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the content is.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Its length in bytes.
    pub size: u64,
    /// In an index: the platform the manifest is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Anything else a descriptor carries (annotations, urls), kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type, when it says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
    /// Anything else (annotations, subject), kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An index of manifests (OCI index or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type, when it says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests, each with its platform.
    pub manifests: Vec<Descriptor>,
    /// Anything else, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A manifest body, read according to its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// An image manifest.
    Manifest(Manifest),
    /// An index of per-platform manifests.
    Index(Index),
}

/// A manifest body hoist cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Docker's schema 1, deprecated since 2017 and refused by current Docker.
    #[error(
        "it is a Docker schema 1 manifest, which hoist does not read; push the image again with a current client"
    )]
    Schema1,
    /// A media type that is neither a manifest nor an index.
    #[error("its media type {0:?} is not an image manifest or index")]
    UnknownMediaType(String),
    /// Not valid JSON for what it claims to be.
    #[error("it is not a valid manifest: {0}")]
    Invalid(String),
}

impl Document {
    /// Reads a manifest body; `content_type` is what the registry said it
    /// is (its `mediaType` field wins when the body has one).
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Document, DocumentError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            schema_version: u32,
            #[serde(default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(body).map_err(|e| DocumentError::Invalid(e.to_string()))?;
        let content_type = content_type.split(';').next().unwrap_or("").trim();
        let media_type = probe.media_type.as_deref().filter(|m| !m.is_empty()).unwrap_or(content_type);
        if probe.schema_version == 1 || media_type::DOCKER_SCHEMA1.contains(&media_type) {
            return Err(DocumentError::Schema1);
        }
        let invalid = |e: serde_json::Error| DocumentError::Invalid(e.to_string());
        match media_type {
            media_type::OCI_INDEX | media_type::DOCKER_LIST => {
                Ok(Document::Index(serde_json::from_slice(body).map_err(invalid)?))
            }
            media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => {
                Ok(Document::Manifest(serde_json::from_slice(body).map_err(invalid)?))
            }
            // Registries that say nothing useful: the body decides.
            "" | "application/json" | "application/octet-stream" => match probe.manifests {
                Some(_) => Ok(Document::Index(serde_json::from_slice(body).map_err(invalid)?)),
                None => Ok(Document::Manifest(serde_json::from_slice(body).map_err(invalid)?)),
            },
            other => Err(DocumentError::UnknownMediaType(other.to_string())),
        }
    }
}

/// A platform: `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`…
    pub architecture: String,
    /// `v7` for `linux/arm/v7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `os.version`, `os.features` and the like, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Platform {
    /// A platform without extra fields.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
            extra: serde_json::Map::new(),
        }
    }

    /// This machine's platform.
    pub fn host() -> Platform {
        Platform::new("linux", crate::image::config::host_architecture(), None)
    }

    /// Parses `linux/amd64`, `linux/arm/v7`.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(format!("invalid platform {text:?}: write os/arch[/variant], e.g. linux/amd64")),
        }
    }

    /// The platform with containerd's normalisation: architecture aliases
    /// (`x86_64` is `amd64`, `aarch64` is `arm64`) and default variants
    /// (`arm64` is `v8`, `arm` is `v7`).
    pub fn normalized(&self) -> Platform {
        let architecture = self.architecture.to_lowercase();
        let variant = self.variant.as_deref().map(str::to_lowercase);
        let (architecture, variant) = match architecture.as_str() {
            "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant.filter(|v| v != "v1")),
            "i386" | "386" => ("386".to_string(), None),
            "aarch64" | "arm64" => {
                let variant = match variant.as_deref() {
                    None | Some("8") | Some("v8") => Some("v8".to_string()),
                    _ => variant,
                };
                ("arm64".to_string(), variant)
            }
            "armhf" => ("arm".to_string(), Some("v7".to_string())),
            "armel" => ("arm".to_string(), Some("v6".to_string())),
            "arm" => {
                let variant = match variant {
                    None => "v7".to_string(),
                    Some(v) if v.starts_with('v') => v,
                    Some(v) => format!("v{v}"),
                };
                ("arm".to_string(), Some(variant))
            }
            _ => (architecture, variant),
        };
        Platform::new(&self.os.to_lowercase(), &architecture, variant.as_deref())
    }

    /// Whether a manifest for `offered` runs here when `self` is wanted:
    /// the same os and architecture, and the same variant when both name
    /// one (after normalisation).
    pub fn matches(&self, offered: &Platform) -> bool {
        let (want, have) = (self.normalized(), offered.normalized());
        want.os == have.os
            && want.architecture == have.architecture
            && (want.variant.is_none() || have.variant.is_none() || want.variant == have.variant)
    }

    /// Whether a machine of this platform runs `other`'s programs (the
    /// variant aside: hoist does not emulate).
    pub fn runs(&self, other: &Platform) -> bool {
        let (a, b) = (self.normalized(), other.normalized());
        a.os == b.os && a.architecture == b.architecture
    }

    /// The index entry for this platform: an exact variant match first,
    /// then any compatible one, in the index's order.
    pub fn choose<'a>(&self, index: &'a Index) -> Option<&'a Descriptor> {
        let candidates: Vec<&Descriptor> =
            index.manifests.iter().filter(|d| d.platform.as_ref().is_some_and(|p| self.matches(p))).collect();
        let exact = candidates.iter().find(|d| {
            d.platform.as_ref().map(Platform::normalized).map(|p| p.variant)
                == Some(self.normalized().variant)
        });
        exact.or(candidates.first()).copied()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variant {
            Some(v) => write!(f, "{}/{}/{v}", self.os, self.architecture),
            None => write!(f, "{}/{}", self.os, self.architecture),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[&str]) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: platforms
                .iter()
                .enumerate()
                .map(|(n, p)| Descriptor {
                    media_type: media_type::OCI_MANIFEST.into(),
                    digest: format!("sha256:{n:064x}"),
                    size: 1,
                    platform: Some(Platform::parse(p).unwrap()),
                    extra: Default::default(),
                })
                .collect(),
            extra: Default::default(),
        }
    }

    fn chosen(want: &str, offered: &[&str]) -> Option<String> {
        let index = index(offered);
        Platform::parse(want).unwrap().choose(&index).map(|d| d.platform.clone().unwrap().to_string())
    }

    #[test]
    fn the_os_and_architecture_choose_the_manifest() {
        assert_eq!(chosen("linux/amd64", &["linux/arm64", "linux/amd64"]).as_deref(), Some("linux/amd64"));
        assert_eq!(chosen("linux/s390x", &["linux/arm64", "linux/amd64"]), None);
        assert_eq!(chosen("windows/amd64", &["linux/amd64"]), None);
    }

    #[test]
    fn variants_follow_containerd() {
        let offered = ["linux/arm/v6", "linux/arm/v7", "linux/arm64/v8"];
        assert_eq!(chosen("linux/arm", &offered).as_deref(), Some("linux/arm/v7"));
        assert_eq!(chosen("linux/arm/v6", &offered).as_deref(), Some("linux/arm/v6"));
        assert_eq!(chosen("linux/arm64", &offered).as_deref(), Some("linux/arm64/v8"));
        assert_eq!(chosen("linux/aarch64", &["linux/arm64"]).as_deref(), Some("linux/arm64"));
        assert_eq!(chosen("linux/x86_64", &["linux/amd64"]).as_deref(), Some("linux/amd64"));
    }

    #[test]
    fn a_manifest_list_and_an_index_are_indexes() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert!(matches!(Document::parse("", body), Ok(Document::Index(_))));
        let body = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(Document::parse(media_type::OCI_INDEX, body), Ok(Document::Index(_))));
    }

    #[test]
    fn a_docker_manifest_reads_with_its_layers() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:aa","size":3},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:bb","size":9}]}"#;
        let Ok(Document::Manifest(manifest)) = Document::parse("", body) else { panic!() };
        assert_eq!(manifest.layers[0].size, 9);
        assert_eq!(manifest.layers[0].media_type, media_type::DOCKER_LAYER_GZIP);
    }

    #[test]
    fn schema_1_is_refused_with_a_reason() {
        let body = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(Document::parse(media_type::DOCKER_SCHEMA1[1], body), Err(DocumentError::Schema1));
        assert_eq!(Document::parse("application/json", body), Err(DocumentError::Schema1));
    }

    #[test]
    fn other_media_types_are_not_manifests() {
        let body = br#"{"schemaVersion":2}"#;
        assert!(matches!(Document::parse("text/html", body), Err(DocumentError::UnknownMediaType(_))));
        assert!(matches!(
            Document::parse(media_type::OCI_MANIFEST, b"<html>"),
            Err(DocumentError::Invalid(_))
        ));
    }
}
