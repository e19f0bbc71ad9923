//! Runs one process in a namespaced sandbox; shared by `RUN` and `hoist run`.
//!
//! [`run`] takes a [`SandboxSpec`] (built with [`SandboxSpec::new`]: a
//! [`RootFs`] — a directory, or an overlay of lower layers the sandbox mounts
//! itself — and the argv; then env, cwd, user, hostname, [`Network`],
//! `/etc/hosts` and `resolv.conf` content, extra [`BindMount`]s, [`Rlimit`]s,
//! [`Stdin`], [`Output`] (inherit, null, or a callback receiving each
//! [`Stream`]'s chunks as they arrive), a timeout and a cancel flag) and
//! returns an [`Outcome`] (the [`ExitStatus`], whether it timed out or was
//! cancelled, the duration, and the mount points created in the image), or a
//! [`SandboxError`] when the process could not be started — e.g.
//! `exec "foo": no such file or directory in the image` — which is distinct
//! from a process exiting non-zero. The process gets new mount, pid, uts and
//! ipc namespaces, a user namespace when [`rootless`] (one per hoist process,
//! made once and joined by every sandbox and [`as_namespace_root`] helper),
//! and a network namespace with only `lo` unless [`Network::Host`]. It runs as pid 2: pid 1 is the
//! sandbox's own init, which reaps orphans and, when the command ends, kills
//! whatever it left behind. It sees a pivoted root with `/proc`, a minimal
//! `/dev`, a read-only `/sys`, and bind-mounted `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname` that never land in the image; it
//! runs with Docker's [`DEFAULT_CAPABILITIES`] and no_new_privs. Nothing
//! outlives the call on the host — no mount, process or temp file — even if
//! the caller is killed. [`resolve_user`] is Docker's `--user` lookup against
//! an image's own passwd/group files. [`as_namespace_root`] runs file work
//! as root of a user namespace with a rootless sandbox's maps, for files a
//! rootless process left that its caller cannot read or remove. Whether an overlay root can be used
//! here is the snapshot module's probe (`snapshot::overlay_supported`).

mod capability;
mod error;
mod idmap;
mod init;
mod process;
mod report;
mod rootfs;
mod spec;
mod sys;
mod syscall;
mod unshared;
pub(crate) mod user;

pub use capability::{DEFAULT_CAPABILITIES, default_capability_mask};
pub use error::SandboxError;
pub use process::run;
pub use spec::{
    BindMount, ExitStatus, Network, Outcome, Output, OutputSink, Rlimit, RlimitResource, RootFs, SandboxSpec,
    Stdin, Stream,
};
pub use unshared::{as_namespace_root, namespace_available};
pub use user::{ResolvedUser, resolve_user};

/// Whether sandboxes need a user namespace; kept here for callers that
/// ask the sandbox.
pub use crate::idmap::rootless;

/// Overlayfs leaves `work/work` with mode 000; in a user namespace it is
/// owned by the caller, who then could not delete it. Make it removable.
pub(crate) fn release_work_dir(work: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let inner = work.join("work");
    if std::fs::symlink_metadata(&inner).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700));
    }
}
