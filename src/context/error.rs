//! The errors of the context module.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use super::pattern::PatternError;

/// What can go wrong reading a build context; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Reading the context, its ignore file or the stat cache failed.
    #[error("build context {path}: {source}")]
    Io {
        /// The host path operated on.
        path: PathBuf,
        /// The operation's error.
        source: io::Error,
    },

    /// The context root is not a directory.
    #[error("build context {path} is not a directory")]
    NotADirectory {
        /// The context root, canonical.
        path: PathBuf,
    },

    /// A pattern in the ignore file is malformed.
    #[error("{file}: {source}")]
    IgnorePattern {
        /// The ignore file on the host.
        file: PathBuf,
        /// Which pattern, and what is wrong with it.
        source: PatternError,
    },

    /// A COPY/ADD source's wildcard is malformed.
    #[error("COPY source {path:?}: {source}")]
    SourcePattern {
        /// The source as written in the instruction.
        path: String,
        /// Which component, and what is wrong with it.
        source: PatternError,
    },

    /// A COPY/ADD source selects nothing in the context. The message keeps
    /// Docker's wording, so users recognise it, plus a hint of our own.
    #[error("file not found in build context or excluded by .dockerignore: stat {path}: file does not exist{}", not_found_hint(.suggestions, .excluded_by))]
    SourceNotFound {
        /// The source as a context-relative path, cleaned, without a leading `/`.
        path: String,
        /// Similar paths that are in the context, closest first.
        suggestions: Vec<String>,
        /// The file name of the ignore file, when `path` exists on disk but
        /// that file excludes it; `None` otherwise.
        excluded_by: Option<String>,
    },

    /// A source ending in `/` resolves to something other than a directory.
    #[error("COPY source {path:?} names a directory, but {resolved:?} is not one")]
    SourceNotADirectory {
        /// The source as written in the instruction.
        path: String,
        /// The context path it resolves to, symlinks followed.
        resolved: String,
    },

    /// Resolving a source followed more than 40 symlinks, as Linux refuses to.
    #[error("COPY source {path:?}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The source as written in the instruction.
        path: String,
    },
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
