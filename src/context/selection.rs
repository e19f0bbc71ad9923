//! COPY/ADD sources → context paths.
//!
//! - Sources are cleaned from the context root ([`crate::paths::rooted`]), so
//!   `..` stops there.
//! - Wildcards are matched component by component (Go `filepath.Match`),
//!   symlinks followed inside the context, and a miss gets "did you mean"
//!   suggestions.

use std::collections::VecDeque;

use super::Context;
use super::entry::EntryKind;
use super::error::ContextError;
use super::pattern::{ComponentGlob, has_wildcard};
use crate::paths;

/// Linux's limit on symlinks followed while resolving one path.
const MAX_SYMLINK_HOPS: usize = 40;

/// One context path a COPY/ADD source selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The source as written in the instruction.
    pub source: String,
    /// The matched context path (`""` is the root), before following symlinks.
    pub path: String,
    /// The context path whose content is copied: `path` with symlinks
    /// followed (inside the context) for a literal source; a wildcard match
    /// is taken as it is, so a matched symlink is copied as a symlink.
    pub resolved: String,
    /// Whether `resolved` is a directory, whose contents are copied with it.
    pub is_dir: bool,
}

impl Context {
    pub(crate) fn resolve_one(&self, source: &str) -> Result<Vec<Selection>, ContextError> {
        // Rooting before cleaning clamps `..` at the context root, as Docker does.
        let cleaned = paths::rooted(source);
        let rel = cleaned.trim_start_matches('/');
        let wants_dir = source.ends_with('/') && !rel.is_empty();
        let selections = if has_wildcard(rel) {
            self.match_wildcard(source, rel, wants_dir)?
        } else {
            let resolved = self.follow(source, rel, true)?.ok_or_else(|| self.not_found(rel))?;
            let is_dir = self.is_dir(&resolved);
            if wants_dir && !is_dir {
                return Err(ContextError::SourceNotADirectory { path: source.to_string(), resolved });
            }
            vec![Selection { source: source.to_string(), path: rel.to_string(), resolved, is_dir }]
        };
        if selections.is_empty() {
            return Err(self.not_found(rel));
        }
        Ok(selections)
    }

    fn match_wildcard(
        &self,
        source: &str,
        rel: &str,
        wants_dir: bool,
    ) -> Result<Vec<Selection>, ContextError> {
        let bad = |e| ContextError::SourcePattern { path: source.to_string(), source: e };
        // (path as matched, path with the parents' symlinks followed)
        let mut candidates = vec![(String::new(), String::new())];
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let glob = ComponentGlob::compile(part).map_err(bad)?;
            let mut next = Vec::new();
            for (shown, real) in &candidates {
                let dir = if real.is_empty() {
                    String::new()
                } else {
                    match self.follow(source, real, true)? {
                        Some(dir) if self.is_dir(&dir) => dir,
                        _ => continue,
                    }
                };
                for child in self.children(&dir) {
                    if glob.matches(child.name()) {
                        let name = child.name();
                        let shown =
                            if shown.is_empty() { name.to_string() } else { format!("{shown}/{name}") };
                        next.push((shown, child.path.clone()));
                    }
                }
            }
            candidates = next;
            if last {
                break;
            }
        }
        let mut selections = Vec::new();
        for (path, resolved) in candidates {
            let mut is_dir = self.is_dir(&resolved);
            let mut resolved = resolved;
            if wants_dir && !is_dir {
                // `dir*/` asks for directories; a symlink to one qualifies.
                match self.follow(source, &resolved, true)? {
                    Some(target) if self.is_dir(&target) => {
                        resolved = target;
                        is_dir = true;
                    }
                    _ => continue,
                }
            }
            selections.push(Selection { source: source.to_string(), path, resolved, is_dir });
        }
        Ok(selections)
    }

    /// Resolves `path` component by component among the context's entries,
    /// following symlinks (the last one only if `follow_last`) and treating
    /// absolute targets and `..` as relative to, and clamped at, the root.
    /// `None` when something along the way is missing or excluded.
    pub(crate) fn follow(
        &self,
        source: &str,
        path: &str,
        follow_last: bool,
    ) -> Result<Option<String>, ContextError> {
        let mut done: Vec<String> = Vec::new();
        let mut pending: VecDeque<String> = path.split('/').map(str::to_string).collect();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let current = done.join("/");
            let Some(entry) = self.entry(&current) else { return Ok(None) };
            if let EntryKind::Symlink { target } = &entry.kind
                && (follow_last || !pending.is_empty())
            {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(ContextError::SymlinkLoop { path: source.to_string() });
                }
                done.pop();
                let target = target.to_string_lossy();
                if target.starts_with('/') {
                    done.clear();
                }
                for part in target.split('/').rev() {
                    pending.push_front(part.to_string());
                }
            }
        }
        Ok(Some(done.join("/")))
    }

    fn not_found(&self, rel: &str) -> ContextError {
        let excluded_by = match &self.ignore_file {
            Some(file) if self.matcher.matches(rel) && self.root.join(rel).symlink_metadata().is_ok() => {
                Some(file.file_name().unwrap_or_default().to_string_lossy().into_owned())
            }
            _ => None,
        };
        ContextError::SourceNotFound {
            path: rel.to_string(),
            suggestions: self.similar_paths(rel),
            excluded_by,
        }
    }

    /// Up to three context paths close to `wanted`: by edit distance over the
    /// whole path, or with the same file name elsewhere in the tree.
    fn similar_paths(&self, wanted: &str) -> Vec<String> {
        let wanted_len = wanted.chars().count();
        let wanted_name = wanted.rsplit('/').next().unwrap_or(wanted);
        let limit = (wanted_len / 3).max(1);
        let mut scored: Vec<(usize, &str)> = Vec::new();
        for entry in &self.entries {
            let len = entry.path.chars().count();
            let distance = if len.abs_diff(wanted_len) <= limit {
                strsim::levenshtein(wanted, &entry.path)
            } else {
                usize::MAX
            };
            if distance <= limit {
                scored.push((distance, &entry.path));
            } else if !wanted_name.is_empty() && entry.name() == wanted_name {
                scored.push((limit + 1, &entry.path));
            }
        }
        scored.sort();
        scored.into_iter().take(3).map(|(_, p)| p.to_string()).collect()
    }
}
