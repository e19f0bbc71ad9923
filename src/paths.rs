//! Lexical path rules for untrusted names, each named after what its result guarantees.
//!
//! - [`confined`]: an archive member name (a layer's tar entry or hardlink
//!   target) made relative to the root it lands in, Docker's applyLayer
//!   rule: a leading `/` means that root; `..` that would climb above it, or
//!   a NUL byte, is refused. For layer extraction, the layer check and
//!   snapshot unpacking.
//! - [`confined_relative`]: the same for names that must already be
//!   relative, such as the members of an image archive: a leading `/` is
//!   refused too.
//! - [`descending`]: a name hoist itself writes into a layer, or mounts on:
//!   relative and without `..` at all, which such a name never needs.
//! - [`rooted`] and [`rooted_components`]: Go's `path.Clean` of a container
//!   path taken from `/`, so `..` at the root stays there; for WORKDIR, COPY
//!   destinations, lookups in an image and context sources.
//! - [`go_clean`]: Go's `path.Clean` (`filepath.Clean` on Unix) exactly, for
//!   `.dockerignore` patterns and the paths they are matched against.
//! - A foundation module: it imports nothing from the rest of the crate.
//!   None of these rules looks at the filesystem; symlinks are the caller's.

/// Why a name cannot be confined to a root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unconfined {
    /// A `..` would climb above the root.
    #[error("`..` climbs above the root")]
    Escapes,
    /// The name starts with `/` where only relative names are allowed.
    #[error("the name is absolute")]
    Absolute,
    /// The name holds a NUL byte, which no path on Linux can.
    #[error("the name contains a NUL byte")]
    Nul,
}

/// `name` relative to the root it is extracted into: a leading `/` and
/// `.` or empty components are dropped, `..` removes the component before
/// it. The result is empty for the root itself, never starts or ends with
/// `/`, and holds no `.`, `..` or empty component.
pub fn confined(name: &[u8]) -> Result<Vec<u8>, Unconfined> {
    if name.contains(&0) {
        return Err(Unconfined::Nul);
    }
    let mut components: Vec<&[u8]> = Vec::new();
    for component in name.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                components.pop().ok_or(Unconfined::Escapes)?;
            }
            _ => components.push(component),
        }
    }
    Ok(components.join(&b'/'))
}

/// [`confined`] for a name that must be relative: one starting with `/` is
/// refused rather than taken from the root.
pub fn confined_relative(name: &[u8]) -> Result<Vec<u8>, Unconfined> {
    if name.starts_with(b"/") {
        return Err(Unconfined::Absolute);
    }
    confined(name)
}

/// `name` made relative, without `.` or empty components: `None` if it has
/// a `..` component anywhere or a NUL byte. The result is empty for `/`,
/// `.` or `""`.
pub fn descending(name: &[u8]) -> Option<Vec<u8>> {
    if name.contains(&0) {
        return None;
    }
    let mut components: Vec<&[u8]> = Vec::new();
    for component in name.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return None,
            _ => components.push(component),
        }
    }
    Some(components.join(&b'/'))
}

/// The components of `path` taken from `/`: `.` and empty ones dropped,
/// `..` removing the one before it and doing nothing at the root.
pub fn rooted_components(path: &str) -> Vec<String> {
    let mut components: Vec<String> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            other => components.push(other.to_string()),
        }
    }
    components
}

/// Go's `path.Clean("/" + path)`: an absolute path with no `.`, `..` or
/// empty component and no trailing `/` (except `/` itself).
pub fn rooted(path: &str) -> String {
    format!("/{}", rooted_components(path).join("/"))
}

/// Go's `path.Clean`: collapses `//`, drops `.`, resolves `..` lexically
/// (never above `/` for a rooted path; a relative path keeps its leading
/// `..`), drops a trailing `/`; `""` becomes `.`.
pub fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut components: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if components.last().is_some_and(|&c| c != "..") {
                    components.pop();
                } else if !rooted {
                    components.push("..");
                }
            }
            other => components.push(other),
        }
    }
    let joined = components.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_drops_a_leading_slash_and_dots() {
        assert_eq!(confined(b"/etc/./passwd"), Ok(b"etc/passwd".to_vec()));
        assert_eq!(confined(b"//x"), Ok(b"x".to_vec()));
        assert_eq!(confined(b"/a/./b/"), Ok(b"a/b".to_vec()));
    }

    #[test]
    fn confined_names_the_root_itself_with_the_empty_name() {
        assert_eq!(confined(b"./"), Ok(Vec::new()));
        assert_eq!(confined(b""), Ok(Vec::new()));
        assert_eq!(confined(b"/"), Ok(Vec::new()));
        assert_eq!(confined(b"a/.."), Ok(Vec::new()));
    }

    #[test]
    fn confined_resolves_dot_dot_that_stays_inside() {
        assert_eq!(confined(b"a/b/../c"), Ok(b"a/c".to_vec()));
    }

    #[test]
    fn confined_refuses_dot_dot_that_escapes() {
        for name in [&b"../x"[..], b"../../x", b"a/../../b", b"/../x", b"..", b"a/b/../../../c"] {
            assert_eq!(confined(name), Err(Unconfined::Escapes), "{:?}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn confined_refuses_a_nul_byte() {
        assert_eq!(confined(b"a\0b"), Err(Unconfined::Nul));
        assert_eq!(confined(b"../\0"), Err(Unconfined::Nul));
    }

    #[test]
    fn confined_relative_refuses_an_absolute_name() {
        assert_eq!(confined_relative(b"/etc/passwd"), Err(Unconfined::Absolute));
        assert_eq!(confined_relative(b"//x"), Err(Unconfined::Absolute));
    }

    #[test]
    fn confined_relative_confines_a_relative_name() {
        assert_eq!(confined_relative(b"./blobs/sha256/../sha256/ab"), Ok(b"blobs/sha256/ab".to_vec()));
        assert_eq!(confined_relative(b"a/../../b"), Err(Unconfined::Escapes));
    }

    #[test]
    fn descending_strips_leading_slashes_and_dots() {
        assert_eq!(descending(b"/./a//b/./c/"), Some(b"a/b/c".to_vec()));
        assert_eq!(descending(b"//x"), Some(b"x".to_vec()));
    }

    #[test]
    fn descending_names_the_root_with_the_empty_name() {
        assert_eq!(descending(b"./"), Some(Vec::new()));
        assert_eq!(descending(b""), Some(Vec::new()));
    }

    #[test]
    fn descending_refuses_any_dot_dot() {
        for name in [&b"a/../b"[..], b"../../x", b"a/../../b", b".."] {
            assert_eq!(descending(name), None, "{:?}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn descending_refuses_a_nul_byte() {
        assert_eq!(descending(b"a\0"), None);
    }

    #[test]
    fn rooted_components_never_climb_above_the_root() {
        assert_eq!(rooted_components("/a/./b//c/../d"), ["a", "b", "d"]);
        assert_eq!(rooted_components("../../x"), ["x"]);
        assert_eq!(rooted_components("a/../../b"), ["b"]);
        assert!(rooted_components("./").is_empty());
        assert!(rooted_components("").is_empty());
    }

    #[test]
    fn rooted_is_go_path_clean_of_the_path_from_the_root() {
        for path in ["", ".", "./", "//x", "a/../../b", "/a/b/", "../../x", "/a//b/./c/..", "x/.."] {
            assert_eq!(rooted(path), go_clean(&format!("/{path}")), "{path:?}");
        }
        assert_eq!(rooted("/a/../.."), "/");
        assert_eq!(rooted("app/"), "/app");
    }

    #[test]
    fn go_clean_matches_go_for_rooted_paths() {
        assert_eq!(go_clean("/"), "/");
        assert_eq!(go_clean("//x"), "/x");
        assert_eq!(go_clean("/../x"), "/x");
        assert_eq!(go_clean("/a/b/../../.."), "/");
    }

    #[test]
    fn go_clean_keeps_leading_dot_dot_of_a_relative_path() {
        assert_eq!(go_clean("../../x"), "../../x");
        assert_eq!(go_clean("a/../../b"), "../b");
        assert_eq!(go_clean("a/../.."), "..");
    }

    #[test]
    fn go_clean_of_nothing_is_dot() {
        assert_eq!(go_clean(""), ".");
        assert_eq!(go_clean("./"), ".");
        assert_eq!(go_clean("a/.."), ".");
    }

    #[test]
    fn go_clean_drops_a_trailing_slash_and_empty_components() {
        assert_eq!(go_clean("a//b/./c/"), "a/b/c");
    }
}
