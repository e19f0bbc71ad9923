//! Which proxy a request goes through, as Go's `http.ProxyFromEnvironment`
//! decides it for Docker.
//!
//! - `HTTPS_PROXY` for `https://` URLs, `HTTP_PROXY` for `http://` ones
//!   (upper case first, then lower case); a value without a scheme is
//!   `http://`.
//! - `NO_PROXY`: comma-separated; `*` matches everything; an IP or CIDR
//!   matches addresses; `example.com` matches it and its subdomains,
//!   `.example.com` only subdomains; an entry with `:port` only that port.
//! - `localhost` and loopback addresses are never proxied.

use std::net::IpAddr;

use super::settings::{host_name, in_cidr};

/// The proxy settings of the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// For `http://` URLs.
    pub http: Option<String>,
    /// For `https://` URLs.
    pub https: Option<String>,
    /// `NO_PROXY`.
    pub no_proxy: String,
}

impl ProxyEnv {
    /// Read from the process's environment.
    pub fn from_env() -> ProxyEnv {
        let var = |upper: &str, lower: &str| {
            std::env::var(upper)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| std::env::var(lower).ok().filter(|v| !v.is_empty()))
        };
        ProxyEnv {
            http: var("HTTP_PROXY", "http_proxy"),
            https: var("HTTPS_PROXY", "https_proxy"),
            no_proxy: var("NO_PROXY", "no_proxy").unwrap_or_default(),
        }
    }

    /// The proxy URL for a request to `host` (`name[:port]`) over `scheme`.
    pub fn proxy_for(&self, scheme: &str, host: &str) -> Option<String> {
        let proxy = match scheme {
            "https" => self.https.as_ref(),
            _ => self.http.as_ref(),
        }?;
        let name = host_name(host).to_ascii_lowercase();
        if name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return None;
        }
        let port = host_port(host).unwrap_or(if scheme == "https" { 443 } else { 80 });
        if self.no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|e| excludes(e, &name, port))
        {
            return None;
        }
        Some(if proxy.contains("://") { proxy.clone() } else { format!("http://{proxy}") })
    }
}

fn host_port(host: &str) -> Option<u16> {
    if let Some(rest) = host.strip_prefix('[') {
        let (_, after) = rest.split_once(']')?;
        return after.strip_prefix(':')?.parse().ok();
    }
    let (name, port) = host.rsplit_once(':')?;
    // A bare IPv6 address has colons and no port.
    if name.contains(':') { None } else { port.parse().ok() }
}

/// Whether the `NO_PROXY` entry `entry` covers `name` on `port`.
fn excludes(entry: &str, name: &str, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    let entry = entry.to_ascii_lowercase();
    if let Some((network, bits)) = entry.split_once('/') {
        return name.parse::<IpAddr>().is_ok_and(|ip| in_cidr(ip, network, bits));
    }
    let (entry_host, entry_port) = match host_port(&entry) {
        Some(p) => (host_name(&entry).to_string(), Some(p)),
        None => (entry.trim_start_matches('[').trim_end_matches(']').to_string(), None),
    };
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    if let (Ok(a), Ok(b)) = (entry_host.parse::<IpAddr>(), name.parse::<IpAddr>()) {
        return a == b;
    }
    let entry_host = entry_host.trim_start_matches("*.");
    match entry_host.strip_prefix('.') {
        Some(suffix) => name.ends_with(&format!(".{suffix}")),
        None => name == entry_host || name.ends_with(&format!(".{entry_host}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(no_proxy: &str) -> ProxyEnv {
        ProxyEnv {
            http: Some("proxy:3128".into()),
            https: Some("http://secure-proxy:3128".into()),
            no_proxy: no_proxy.into(),
        }
    }

    #[test]
    fn each_scheme_has_its_proxy() {
        let env = env("");
        assert_eq!(env.proxy_for("http", "r.example:5000").as_deref(), Some("http://proxy:3128"));
        assert_eq!(env.proxy_for("https", "r.example").as_deref(), Some("http://secure-proxy:3128"));
        assert_eq!(ProxyEnv::default().proxy_for("https", "r.example"), None);
    }

    #[test]
    fn loopback_is_never_proxied() {
        let env = env("");
        for host in ["localhost:5000", "127.0.0.1:5000", "[::1]:5000", "127.1.2.3"] {
            assert_eq!(env.proxy_for("https", host), None, "{host}");
        }
    }

    #[test]
    fn no_proxy_matches_as_go_matches() {
        let env = env("example.com, .only-sub.org, 10.0.0.0/8, 192.168.1.5, r.lan:5000");
        for (host, proxied) in [
            ("example.com", false),
            ("a.example.com", false),
            ("notexample.com", true),
            ("only-sub.org", true),
            ("x.only-sub.org", false),
            ("10.9.8.7:5000", false),
            ("11.0.0.1", true),
            ("192.168.1.5:443", false),
            ("r.lan:5000", false),
            ("r.lan:5001", true),
        ] {
            assert_eq!(env.proxy_for("https", host).is_some(), proxied, "{host}");
        }
        assert_eq!(super::tests::env("*").proxy_for("https", "any.where"), None);
    }
}
