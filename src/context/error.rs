//! The errors of the context module.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use super::pattern::PatternError;

/// What can go wrong reading a build context; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("build context {path} is not a directory")]
    NotADirectory { path: PathBuf },

    #[error("{file}: {source}")]
    IgnorePattern { file: PathBuf, source: PatternError },

    #[error("COPY source {path:?}: {source}")]
    SourcePattern { path: String, source: PatternError },

    /// Docker's wording, so users recognise it, plus a hint of our own.
    #[error("file not found in build context or excluded by .dockerignore: stat {path}: file does not exist{}", not_found_hint(.suggestions, .excluded_by))]
    SourceNotFound {
        path: String,
        /// Similar paths that are in the context, closest first.
        suggestions: Vec<String>,
        /// The ignore file that excludes `path`, when it exists on disk.
        excluded_by: Option<String>,
    },

    #[error("COPY source {path:?} names a directory, but {resolved:?} is not one")]
    SourceNotADirectory { path: String, resolved: String },

    #[error("COPY source {path:?}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
}

fn not_found_hint(suggestions: &[String], excluded_by: &Option<String>) -> String {
    let mut hint = String::new();
    if let Some(file) = excluded_by {
        let _ = write!(hint, " (it exists but {file} excludes it)");
    }
    if !suggestions.is_empty() {
        let _ = write!(hint, ": did you mean {}?", suggestions.join(" or "));
    }
    hint
}

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ContextError {
    let path = path.into();
    move |source| ContextError::Io { path, source }
}
