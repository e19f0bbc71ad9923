//! What can stop a build, typed by where it came from.
//!
//! - [`SolveError`]: the build's error; a step's carries its span.
//! - [`StepError`]: why one step failed, with the lower modules' errors
//!   kept whole (`#[from]`) and a hint where the user can act.

use std::io;
use std::path::PathBuf;

use crate::context::ContextError;
use crate::diagnostic::{Diagnostic, Span};
use crate::layer::LayerError;
use crate::sandbox::SandboxError;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;

use super::copy_plan::CopyError;

/// Why a build stopped.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// A step failed.
    #[error("{instruction}: {error}")]
    Step {
        /// The instruction's lines.
        span: Span,
        /// `RUN`, `COPY`…
        instruction: &'static str,
        /// What went wrong.
        error: Box<StepError>,
    },
    /// The store failed outside any step.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The snapshots could not be opened.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The context's stat cache could not be saved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The build's threads could not be started.
    #[error("cannot start the build threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
    /// A stage's thread panicked (a bug in hoist).
    #[error("stage {0} panicked")]
    Panicked(usize),
    /// The build was cancelled (by the caller or by another stage failing).
    #[error("the build was cancelled")]
    Cancelled,
}

impl SolveError {
    /// The error as a diagnostic at its step's line, if a step failed.
    pub fn diagnostic(&self) -> Option<Diagnostic> {
        match self {
            SolveError::Step { span, instruction, error } => {
                let diagnostic = Diagnostic::at(*span, format!("{instruction}: {error}"));
                Some(match error.hint() {
                    Some(hint) => diagnostic.with_hint(hint),
                    None => diagnostic,
                })
            }
            _ => None,
        }
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step's own failure, said for the user (a process that exited
    /// non-zero, with its last output; a source that is not there).
    #[error("{message}")]
    Failed {
        /// What happened.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// Reading the build context.
    #[error("{0}")]
    Context(#[from] ContextError),
    /// Laying out a copy.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// Writing a layer.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sandbox could not run the process.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The layers under the step could not be unpacked.
    #[error("cannot unpack the layers: {0}")]
    Unpack(SnapshotError),
    /// The working root could not be prepared.
    #[error("cannot prepare the root filesystem: {0}")]
    Prepare(SnapshotError),
    /// The changes could not be turned into a layer.
    #[error("cannot record the changes: {0}")]
    Diff(SnapshotError),
    /// A file the step needs could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The rootless helper that reads and writes as the user namespace's
    /// root failed.
    #[error("cannot work as the user namespace's root: {0}")]
    NamespaceHelper(String),
    /// The build was cancelled while the step ran.
    #[error("the build was cancelled")]
    Cancelled,
}

impl StepError {
    /// A failure described for the user.
    pub fn failed(message: impl Into<String>) -> StepError {
        StepError::Failed { message: message.into(), hint: None }
    }

    /// What the user can do about it, where there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            StepError::Failed { hint, .. } => hint.clone(),
            _ => None,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StepError {
        let path = path.into();
        move |source| StepError::Io { path, source }
    }
}
