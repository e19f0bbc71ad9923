//! Image references, normalised as Docker normalises them.
//!
//! - [`Reference`]: `app` is `docker.io/library/app:latest`,
//!   `localhost:5000/a/b` keeps its registry, `name@sha256:…` pins a
//!   manifest.
//! - [`Reference::parse`]: rejects what Docker rejects, quoting Docker's rule
//!   in the message ([`ReferenceError`]).
//! - [`DEFAULT_DOMAIN`]: the registry a name without one is on.

use std::fmt;

/// The registry Docker assumes when a name has none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LENGTH: usize = 255;

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port: `docker.io`, `localhost:5000`.
    pub domain: String,
    /// Repository path in the registry: `library/app`, `team/app`.
    pub path: String,
    /// The tag (`latest`, `1.2`); `None` when the reference has only a
    /// digest, or none at all from [`Reference::parse_name_only`].
    pub tag: Option<String>,
    /// `sha256:<hex>` of a manifest.
    pub digest: Option<String>,
}

/// A reference Docker would refuse, with the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format: {0}")]
pub struct ReferenceError(pub String);

impl Reference {
    /// Parses and normalises a reference; a reference with neither tag nor
    /// digest gets the tag `latest`.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let mut reference = Reference::parse_name_only(text)?;
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some("latest".to_string());
        }
        Ok(reference)
    }

    /// Parses and normalises without adding a default tag.
    pub fn parse_name_only(text: &str) -> Result<Reference, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError("repository name must have at least one component".into()));
        }
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(ReferenceError(format!(
                "invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest)?)),
            None => (text, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError(format!("tag {tag:?} must match [\\w][\\w.-]{{0,127}}")));
        }
        let (domain, path) = split_domain(name);
        if path.to_lowercase() != path {
            return Err(ReferenceError(format!("repository name ({path}) must be lowercase")));
        }
        if !valid_domain(&domain) {
            return Err(ReferenceError(format!(
                "registry {domain:?} must be a host name or IP address, with an optional :port"
            )));
        }
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(ReferenceError(format!(
                "repository name ({path}) must be path components of [a-z0-9] separated by '.', '_', '__' or '-', joined by '/'"
            )));
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LENGTH {
            return Err(ReferenceError(format!(
                "repository name must not be more than {MAX_NAME_LENGTH} characters"
            )));
        }
        Ok(Reference { domain, path, tag: tag.map(str::to_string), digest })
    }

    /// `docker.io/library/app`
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The name as `docker images` shows it: `app`, `team/app`,
    /// `localhost:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// `app:1`, `team/app@sha256:…`, as Docker prints references.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        self.push_suffix(&mut out);
        out
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
    }
}

impl fmt::Display for Reference {
    /// The full normalised form, `docker.io/library/app:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

/// Docker's rule: the first component is a registry if it has a '.' or a
/// ':', is `localhost`, or has an uppercase letter.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DOMAIN { DEFAULT_DOMAIN.to_string() } else { domain };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    tag.len() <= 128 && chars.next().is_some_and(word) && chars.all(|c| word(c) || c == '.' || c == '-')
}

fn valid_domain(domain: &str) -> bool {
    if let Some(v6) = domain.strip_prefix('[') {
        let Some((address, port)) = v6.split_once(']') else { return false };
        let port_ok = port.is_empty()
            || port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return address.parse::<std::net::Ipv6Addr>().is_ok() && port_ok;
    }
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+` separated by `.`, `_`, `__` or one or more `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn parse_digest(text: &str) -> Result<String, ReferenceError> {
    match text.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(text.to_string())
        }
        _ => Err(ReferenceError(format!(
            "digest {text:?} must be sha256: followed by 64 lowercase hex digits"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_name_gets_library_and_latest() {
        let r = Reference::parse("app").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/app:latest");
        assert_eq!(r.familiar(), "app:latest");
        assert_eq!(r.familiar_name(), "app");
    }

    #[test]
    fn registry_with_port_is_kept() {
        let r = Reference::parse("localhost:5000/a/b").unwrap();
        assert_eq!(r.domain, "localhost:5000");
        assert_eq!(r.path, "a/b");
        assert_eq!(r.familiar(), "localhost:5000/a/b:latest");
    }

    #[test]
    fn user_repository_on_docker_hub() {
        let r = Reference::parse("team/app:1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/team/app:1.0");
        assert_eq!(r.familiar(), "team/app:1.0");
    }

    #[test]
    fn legacy_index_domain_is_docker_io() {
        assert_eq!(
            Reference::parse("index.docker.io/app").unwrap().to_string(),
            "docker.io/library/app:latest"
        );
    }

    #[test]
    fn digest_reference_gets_no_tag() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("app@{digest}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
    }

    #[test]
    fn uppercase_repository_is_rejected_with_docker_rule() {
        let err = Reference::parse("App").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reference format: repository name (library/App) must be lowercase"
        );
    }

    #[test]
    fn uppercase_first_component_is_a_domain() {
        let r = Reference::parse("Registry/app").unwrap();
        assert_eq!(r.domain, "Registry");
    }

    #[test]
    fn bad_tag_is_rejected() {
        let err = Reference::parse("app:-x").unwrap_err();
        assert!(err.to_string().contains("[\\w][\\w.-]{0,127}"), "{err}");
        assert!(Reference::parse(&format!("app:{}", "a".repeat(129))).is_err());
        assert!(Reference::parse("app:").is_err());
    }

    #[test]
    fn hex_id_is_not_a_name() {
        assert!(Reference::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn separators_follow_docker_grammar() {
        assert!(Reference::parse("a__b/c--d/e.f_g").is_ok());
        assert!(Reference::parse("a..b").is_err());
        assert!(Reference::parse("a___b").is_err());
        assert!(Reference::parse("-a").is_err());
        assert!(Reference::parse("a/").is_err());
    }

    #[test]
    fn port_without_path_is_a_tag() {
        let r = Reference::parse("localhost:5000").unwrap();
        assert_eq!(r.path, "library/localhost");
        assert_eq!(r.tag.as_deref(), Some("5000"));
    }
}
