//! Runs one process in a namespaced sandbox; shared by `RUN` and `hoist run`.
//!
//! - [`run`] takes a [`SandboxSpec`] ([`SandboxSpec::new`]: a [`RootFs`], a
//!   directory or an overlay the sandbox mounts itself, and the argv; then env,
//!   cwd, user, hostname, [`Network`], `/etc/hosts` and `resolv.conf`, extra
//!   [`BindMount`]s, [`Rlimit`]s, [`Stdin`], [`Output`] streaming each
//!   [`Stream`], a timeout, a cancel flag) and returns an [`Outcome`] (the
//!   [`ExitStatus`], timeout or cancel, duration, mount points made in the image).
//! - A [`SandboxError`] means the process could not start (`exec "foo": no such
//!   file or directory in the image`), unlike a process exiting non-zero.
//! - Namespaces: mount, pid, uts, ipc; user when [`rootless`] (one per hoist
//!   process, joined by every sandbox and [`as_namespace_root`] helper); network
//!   with only `lo` unless [`Network::Host`].
//! - The process is pid 2 under the sandbox's own init, which reaps orphans and
//!   kills what is left when it ends, or ([`SandboxSpec::init`] off, as `docker
//!   run`) pid 1 itself; it sees a pivoted root with `/proc`, a minimal `/dev`,
//!   a read-only `/sys` and bound `/etc/hosts`, `resolv.conf` and `hostname`
//!   that never land in the image; [`DEFAULT_CAPABILITIES`] (or a
//!   [`capability_mask`]) and no_new_privs.
//! - For `hoist run`: [`Mount`]s (binds, volumes filled from the image, tmpfs),
//!   a read-only root, [`Limits`] through a cgroup (`cgroup`: v2 or v1), a pty
//!   made in the sandbox's devpts, [`Forwarding`] of the caller's signals.
//! - Nothing outlives the call on the host (mount, process, temp file), even if
//!   the caller is killed.
//! - [`resolve_user`]: Docker's `--user` lookup in the image's passwd and group.
//! - [`as_namespace_root`]: file work as root of a rootless sandbox's user
//!   namespace, for files its caller cannot read or remove.
//! - Layout: `rootfs` builds the root from a pure mount plan through the
//!   `syscall` seam; every system call is in `sys`. Whether an overlay root can
//!   be mounted is the snapshot module's probe (`snapshot::overlay_supported`).

mod capability;
mod cgroup;
mod error;
mod init;
mod process;
mod report;
mod rootfs;
mod spec;
mod sys;
mod syscall;
mod unshared;
pub(crate) mod user;
mod userns;

pub use capability::{DEFAULT_CAPABILITIES, capability_mask, capability_number, default_capability_mask};
pub use error::SandboxError;
pub use process::run;
pub use spec::{
    BindMount, ExitStatus, FileContent, Forwarding, Limits, Mount, MountKind, Network, Outcome, Output,
    OutputSink, Rlimit, RlimitResource, RootFs, SandboxSpec, StartHook, Stdin, Stream,
};
pub use unshared::{as_namespace_root, namespace_available};
pub use user::{ResolvedUser, resolve_groups, resolve_user};

/// Whether sandboxes need a user namespace; kept here for callers that
/// ask the sandbox.
pub use crate::idmap::rootless;

/// Sends `signal` to process `pid`: how `hoist rm -f` ends a sandbox it does
/// not run, by its pid 1 (the kernel then ends the whole namespace).
pub fn kill(pid: i32, signal: i32) -> std::io::Result<()> {
    let pid = sys::Pid::from_raw(pid).ok_or_else(|| std::io::Error::other("not a process id"))?;
    let signal = sys::Signal::from_named_raw(signal).ok_or_else(|| std::io::Error::other("not a signal"))?;
    sys::kill(pid, signal)
}

/// Overlayfs leaves `work/work` with mode 000; in a user namespace it is
/// owned by the caller, who then could not delete it. Make it removable.
pub(crate) fn release_work_dir(work: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let inner = work.join("work");
    if std::fs::symlink_metadata(&inner).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700));
    }
}
