use std::io;

/// Why a sandbox could not run the process. A process that ran and exited
/// non-zero is not an error: see [`super::Outcome::status`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec cannot be run as given: an empty command, a relative cwd, a bad
    /// hostname or mount target, a NUL byte, no host directory to stage on, …
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// The executable could not be executed inside the image.
    #[error("exec {program:?}: {reason} in the image")]
    Exec {
        /// `argv[0]` as the spec gave it.
        program: String,
        /// `execve`'s failure in Docker's words, e.g. `no such file or directory`.
        reason: String,
    },
    /// A user name that is not in the image's `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A group name that is not in the image's `/etc/group`.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// The image's `/etc/passwd` or `/etc/group` exists but cannot be read.
    #[error("cannot read {path} in the image: {source}")]
    ImageFile {
        /// The file's absolute path inside the image.
        path: String,
        /// Why reading it failed.
        source: io::Error,
    },
    /// The user exists in the image but has no uid/gid on the host side.
    #[error("user {user} (uid {uid}, gid {gid}) cannot be used rootless: {reason}")]
    UserNotMapped {
        /// The user as the spec gave it (`name`, `uid:gid`, …).
        user: String,
        /// The user id it resolved to inside the image.
        uid: u32,
        /// The primary group id it resolved to inside the image.
        gid: u32,
        /// Why the rootless user namespace lacks these ids.
        reason: String,
    },
    /// A setup step inside the sandbox failed (mounts, pivot_root, …).
    #[error("sandbox setup: {step}: {message}")]
    Setup {
        /// The step that failed, e.g. `pivot_root` or `setuid 1000`.
        step: String,
        /// Its error.
        message: String,
    },
    /// A resource limit needs a cgroup that cannot be made or configured
    /// here; the limit is never silently dropped.
    #[error("{limit}: {reason}")]
    Cgroup {
        /// The limit (`memory limit`, `pids limit`, `cpus limit`).
        limit: String,
        /// Why no cgroup could carry it.
        reason: String,
    },
    /// A host-side step failed (fork, pipes, uid maps, …).
    #[error("sandbox: {context}: {source}")]
    Host {
        /// The step that failed, e.g. `pidfd_open`.
        context: String,
        /// Its error.
        source: io::Error,
    },
}

impl SandboxError {
    pub(crate) fn host(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Host { context: context.into(), source }
    }
}
