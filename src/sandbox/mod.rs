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
//! ipc namespaces, a user namespace when [`rootless`], and a network namespace
//! with only `lo` unless [`Network::Host`]. It runs as pid 2: pid 1 is the
//! sandbox's own init, which reaps orphans and, when the command ends, kills
//! whatever it left behind. It sees a pivoted root with `/proc`, a minimal
//! `/dev`, a read-only `/sys`, and bind-mounted `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname` that never land in the image; it
//! runs with Docker's [`DEFAULT_CAPABILITIES`] and no_new_privs. Nothing
//! outlives the call on the host — no mount, process or temp file — even if
//! the caller is killed. [`resolve_user`] is Docker's `--user` lookup against
//! an image's own passwd/group files (also used by `COPY --chown`);
//! [`overlay_supported`] probes whether an overlay root can be used here.

mod capability;
mod error;
mod idmap;
mod init;
mod process;
mod report;
mod rootfs;
mod spec;
mod sys;
mod user;

use std::sync::OnceLock;

pub use capability::{DEFAULT_CAPABILITIES, default_capability_mask};
pub use error::SandboxError;
pub use process::run;
pub use spec::{
    BindMount, ExitStatus, Network, Outcome, Output, OutputSink, Rlimit, RlimitResource, RootFs, SandboxSpec,
    Stdin, Stream,
};
pub use user::{ResolvedUser, resolve_user};

/// Whether sandboxes need a user namespace, i.e. the caller is not root.
pub fn rootless() -> bool {
    unsafe { libc::geteuid() != 0 }
}

/// How a rootless sandbox maps ids, as container id → host id ranges
/// (uids, gids): the caller becomes 0, its subordinate ranges 1…n. The
/// snapshot diff uses it to record files with the owners the process saw.
pub fn rootless_id_mappings() -> (Vec<crate::layer::IdMapping>, Vec<crate::layer::IdMapping>) {
    idmap::IdMaps::for_current_user().mappings()
}

/// Whether an overlay root can be mounted here (inside a user namespace when
/// [`rootless`]). Probed once per process by mounting a tiny overlay in a
/// throwaway mount namespace.
pub fn overlay_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(probe_overlay)
}

fn probe_overlay() -> bool {
    let base = std::env::temp_dir().join(format!(
        "hoist-overlay-probe-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
    ));
    let dirs = ["lower", "upper", "work", "merged"].map(|d| base.join(d));
    let made = dirs.iter().all(|d| std::fs::create_dir_all(d).is_ok());
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        dirs[0].display(),
        dirs[1].display(),
        dirs[2].display(),
        if rootless() { ",userxattr" } else { "" }
    );
    let (Ok(opts), Ok(target)) = (sys::cstr(&opts), sys::cpath(&dirs[3])) else {
        let _ = std::fs::remove_dir_all(&base);
        return false;
    };
    let uid = unsafe { libc::geteuid() };
    let gid = unsafe { libc::getegid() };
    let maps = [format!("0 {uid} 1"), format!("0 {gid} 1")];
    let ok = made && {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = (|| -> std::io::Result<()> {
                if rootless() {
                    sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)?;
                    std::fs::write("/proc/self/uid_map", &maps[0])?;
                    std::fs::write("/proc/self/setgroups", "deny")?;
                    std::fs::write("/proc/self/gid_map", &maps[1])?;
                } else {
                    sys::unshare(libc::CLONE_NEWNS)?;
                }
                sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
                sys::mount(Some(c"overlay"), &target, Some(c"overlay"), 0, Some(&opts))
            })()
            .map_or(1, |()| 0);
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        pid > 0 && unsafe { libc::waitpid(pid, &mut status, 0) } == pid && status == 0
    };
    release_work_dir(&dirs[2]);
    let _ = std::fs::remove_dir_all(&base);
    ok
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
