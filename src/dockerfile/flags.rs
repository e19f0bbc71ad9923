//! An instruction's flags (`--from=build`, `--link`), checked against the
//! ones it takes.
//!
//! - [`Flags::parse`]: every flag known, of the right kind, with a value when
//!   it needs one; an unknown flag is an error that suggests the closest.
//! - [`closest`]: the "did you mean" of a misspelt keyword or flag.

use super::Diagnostic;
use super::instructions::error;
use super::parse::{Node, column_of};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Bool,
    String,
    Strings,
}

/// Flags of one instruction, checked against what it takes.
pub(super) struct Flags {
    values: Vec<(String, Vec<String>)>,
}

impl Flags {
    pub(super) fn parse(node: &Node, takes: &[(&str, Kind)]) -> Result<Flags, Diagnostic> {
        let name = node.keyword.to_uppercase();
        let mut values: Vec<(String, Vec<String>)> = Vec::new();
        for flag in &node.flags {
            let body = flag.strip_prefix("--").unwrap_or(flag);
            let (key, value) = match body.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (body, None),
            };
            let needle = format!("--{key}");
            let at = |e: Diagnostic| Diagnostic {
                column: node.column + column_of(&node.original, &needle) - 1,
                ..e
            };
            let Some(&(_, kind)) = takes.iter().find(|(n, _)| *n == key) else {
                let mut err = at(error(node, format!("unknown flag: --{key} for {name}")));
                let names: Vec<&str> = takes.iter().map(|(n, _)| *n).collect();
                err.hint = Some(if names.is_empty() {
                    format!("{name} takes no flags")
                } else {
                    let list = names.iter().map(|n| format!("--{n}")).collect::<Vec<_>>().join(", ");
                    match closest(key, &names) {
                        Some(best) => format!("did you mean --{best}? {name} takes {list}"),
                        None => format!("{name} takes {list}"),
                    }
                });
                return Err(err);
            };
            let existing = values.iter().position(|(k, _)| k == key);
            if existing.is_some() && kind != Kind::Strings {
                return Err(at(error(node, format!("duplicate flag specified: --{key}"))));
            }
            let value = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) if v.eq_ignore_ascii_case("true") => "true".to_string(),
                (Kind::Bool, Some(v)) if v.eq_ignore_ascii_case("false") => "false".to_string(),
                (Kind::Bool, Some(v)) => {
                    return Err(at(error(
                        node,
                        format!("expecting boolean value for flag --{key}, not: {v}"),
                    )));
                }
                (_, None) => {
                    return Err(at(error(node, format!("missing a value on flag: --{key}")))
                        .with_hint(format!("write --{key}=<value>")));
                }
                (_, Some(v)) => v.to_string(),
            };
            match existing {
                Some(i) => values[i].1.push(value),
                None => values.push((key.to_string(), vec![value])),
            }
        }
        Ok(Flags { values })
    }

    fn take(&mut self, key: &str) -> Vec<String> {
        self.values.iter_mut().find(|(k, _)| k == key).map(|(_, v)| std::mem::take(v)).unwrap_or_default()
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        self.take(key).pop()
    }

    pub(super) fn strings(&mut self, key: &str) -> Vec<String> {
        self.take(key)
    }

    pub(super) fn bool(&mut self, key: &str) -> Option<bool> {
        self.take(key).pop().map(|v| v == "true")
    }

    // ARG --required is accepted as BuildKit does, but has no effect yet.
    pub(super) fn finish(self) {}
}

/// The candidate nearest to `word` by edit distance, if it is near enough
/// to be a likely typo.
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(&word, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
