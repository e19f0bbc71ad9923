//! `.dockerignore` files, read and matched as Docker does.
//!
//! - Reading as Docker's `ignorefile.ReadAll`; patterns and paths cleaned with
//!   [`crate::paths::go_clean`], Go's `filepath.Clean`.
//! - Matching as moby/patternmatcher's `MatchesOrParentMatches`: the last
//!   pattern that applies to the path or one of its parents wins.

use super::pattern::{IgnoreGlob, PatternError};
use crate::paths::go_clean;

/// One pattern of a `.dockerignore` list.
#[derive(Debug, Clone)]
struct IgnorePattern {
    /// `!pattern`: re-includes what earlier patterns excluded.
    exception: bool,
    glob: IgnoreGlob,
}

/// A compiled `.dockerignore` pattern list.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<IgnorePattern>,
}

/// Which patterns apply to a directory (they apply to all its descendants
/// too), so a walk tests each pattern once per path instead of once per
/// ancestor.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParentHits(Vec<bool>);

impl IgnoreMatcher {
    /// Reads `.dockerignore` text (see [`read_patterns`]) and compiles it.
    pub fn parse(text: &str) -> Result<IgnoreMatcher, PatternError> {
        IgnoreMatcher::new(&read_patterns(text))
    }

    /// Compiles a pattern list the way patternmatcher's constructor does:
    /// each pattern is trimmed, empty ones dropped, a leading `!` marks an
    /// exception, and the rest is cleaned like Go's `filepath.Clean`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<IgnoreMatcher, PatternError> {
        let mut compiled = Vec::new();
        for raw in patterns {
            let mut text = raw.as_ref().trim();
            if text.is_empty() {
                continue;
            }
            let exception = text.starts_with('!');
            if exception {
                text = &text[1..];
                if text.is_empty() {
                    return Err(PatternError { pattern: "!".into(), reason: "illegal exclusion pattern" });
                }
            }
            let glob = IgnoreGlob::compile(&go_clean(text))?;
            compiled.push(IgnorePattern { exception, glob });
        }
        Ok(IgnoreMatcher { patterns: compiled })
    }

    /// Whether the list holds no pattern, so nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is excluded: by a pattern
    /// matching it or any of its parent directories, unless a later `!`
    /// pattern re-includes it. A path that cleans to `.` is never excluded.
    pub fn matches(&self, path: &str) -> bool {
        let cleaned = go_clean(path);
        if cleaned == "." {
            return false;
        }
        let mut hits = ParentHits(vec![false; self.patterns.len()]);
        // The raw path is what patternmatcher tests (a trailing `/` stays);
        // its parents come from `filepath.Dir`, which cleans.
        let parent = parent_of(path);
        if parent != "." {
            let mut prefix_end = 0;
            for part in parent.split('/') {
                prefix_end += part.len();
                let prefix = &parent[..prefix_end];
                for (hit, pattern) in hits.0.iter_mut().zip(&self.patterns) {
                    *hit = *hit || pattern.glob.matches(prefix);
                }
                prefix_end += 1;
            }
        }
        self.decide(path, &mut hits)
    }

    /// The walk's form of [`matches`](Self::matches): `parent` holds which
    /// patterns applied to the parent directory; returns whether `path` is
    /// excluded and what applies to it (for its children).
    pub(crate) fn matches_below(&self, path: &str, parent: &ParentHits) -> (bool, ParentHits) {
        let mut hits =
            if parent.0.is_empty() { ParentHits(vec![false; self.patterns.len()]) } else { parent.clone() };
        let excluded = self.decide(path, &mut hits);
        (excluded, hits)
    }

    fn decide(&self, path: &str, hits: &mut ParentHits) -> bool {
        let mut excluded = false;
        for (hit, pattern) in hits.0.iter_mut().zip(&self.patterns) {
            *hit = *hit || pattern.glob.matches(path);
            if *hit {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Whether some `!` pattern might re-include a path strictly inside the
    /// excluded directory `dir`; if none can, the walk skips the directory.
    pub(crate) fn may_reinclude_below(&self, dir: &str) -> bool {
        self.patterns.iter().any(|p| p.exception && p.glob.may_match_below(dir))
    }
}

/// Reads `.dockerignore` text into a pattern list exactly as Docker's
/// `ignorefile.ReadAll`: a BOM is dropped, lines starting with `#` in column
/// one are comments, lines are trimmed and blank ones skipped, the text after
/// a leading `!` is trimmed again, the pattern is cleaned and one leading `/`
/// removed. `!` alone is kept here and rejected by [`IgnoreMatcher::new`].
pub fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut patterns = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let exception = pattern.starts_with('!');
        if exception {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        patterns.push(if exception { format!("!{cleaned}") } else { cleaned });
    }
    patterns
}

/// Go's `filepath.Dir` for a `/`-separated relative path.
fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => go_clean(&path[..=i]),
        None => ".".to_string(),
    }
}
