use std::io;

/// Why a sandbox could not run the process. A process that ran and exited
/// non-zero is not an error: see [`super::Outcome::status`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// The executable could not be executed inside the image.
    #[error("exec {program:?}: {reason} in the image")]
    Exec { program: String, reason: String },
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("cannot read {path} in the image: {source}")]
    ImageFile { path: String, source: io::Error },
    /// The user exists in the image but has no uid/gid on the host side.
    #[error("user {user} (uid {uid}, gid {gid}) cannot be used rootless: {reason}")]
    UserNotMapped { user: String, uid: u32, gid: u32, reason: String },
    /// A setup step inside the sandbox failed (mounts, pivot_root, …).
    #[error("sandbox setup: {step}: {message}")]
    Setup { step: String, message: String },
    /// A host-side step failed (fork, pipes, uid maps, …).
    #[error("sandbox: {context}: {source}")]
    Host { context: String, source: io::Error },
}

impl SandboxError {
    pub(crate) fn host(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Host { context: context.into(), source }
    }
}
