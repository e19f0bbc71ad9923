//! The sandbox's root, built inside its mount namespace by the pid-namespace init.
//!
//! - [`RootPlan`]: what the init needs, prepared by the caller.
//! - `plan`: the pure function from a [`RootPlan`] to the ordered mount
//!   steps (the root as a bind or an overlay, the pivot, `/dev`, `/proc`, a
//!   read-only `/sys`, extra binds, `hoist run`'s binds, volumes (copied up
//!   from the image when empty) and tmpfs, the `/etc` files Docker gives a
//!   container), and the steps after the process's working directory is
//!   made (a read-only root).
//! - `apply`: runs the steps through a [`Syscall`](super::syscall::Syscall),
//!   recording the [`MountPoints`] it had to make in the image.
//! - [`setup`]: both, with the kernel's own operations.

mod apply;
mod plan;

use std::io;
use std::path::PathBuf;

pub(crate) use apply::MountPoints;

use super::error::SandboxError;
use super::spec::{BindMount, Mount, RootFs};
use super::syscall::LinuxSyscall;

/// A failed operation as a [`SandboxError::Setup`] naming the step.
pub(crate) fn step<T>(name: &str, r: io::Result<T>) -> Result<T, SandboxError> {
    r.map_err(|e| SandboxError::Setup { step: name.to_string(), message: e.to_string() })
}

/// What the init needs to build the root, prepared by the parent.
pub(crate) struct RootPlan {
    pub root: RootFs,
    /// A host directory the init covers with its staging tmpfs.
    pub staging: PathBuf,
    pub mounts: Vec<BindMount>,
    /// `hoist run`'s mounts, sources already canonical host paths.
    pub container_mounts: Vec<Mount>,
    pub readonly_root: bool,
    pub hosts: String,
    pub resolv_conf: String,
    pub hostname: String,
    /// Whether the sandbox has its own user namespace (rootless).
    pub userns: bool,
    /// Whether the sandbox has its own network namespace.
    pub netns: bool,
}

/// Builds the root at `plan.staging/root` and pivots into it: on return `/`
/// is the sandbox root, with `/dev`, `/proc`, `/sys`, the extra binds and
/// the `/etc` files, and the old root is detached.
pub(crate) fn setup(plan: &RootPlan, points: &mut MountPoints) -> Result<(), SandboxError> {
    apply::apply(&plan::mount_steps(plan), &LinuxSyscall, points)
}

/// What is left once the process's working directory exists: the root made
/// read-only if asked.
pub(crate) fn finish(plan: &RootPlan, points: &mut MountPoints) -> Result<(), SandboxError> {
    apply::apply(&plan::finishing_steps(plan), &LinuxSyscall, points)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sandbox::sys::{self, Forked, UnshareFlags};

    /// The pre-6.8 path on a real kernel: relative paths from the layers'
    /// common parent.
    #[test]
    fn classic_overlay_mount_with_relative_paths() {
        if crate::idmap::rootless() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("hoist-classic-overlay-{}", std::process::id()));
        let names = ["l1", "l2", "upper", "work", "merged"];
        for n in names {
            std::fs::create_dir_all(dir.join(n)).unwrap();
        }
        std::fs::write(dir.join("l1/a"), "1").unwrap();
        std::fs::write(dir.join("l2/b"), "2").unwrap();
        let overlay = plan::overlay_mount(
            &[dir.join("l1"), dir.join("l2")],
            &dir.join("upper"),
            &dir.join("work"),
            &dir.join("merged"),
            false,
        );
        // SAFETY: the child mounts, reads and leaves through exit_now.
        let forked = unsafe { sys::fork() }.unwrap();
        if let Forked::Child(_) = forked {
            let ok = sys::unshare(UnshareFlags::NEWNS).is_ok()
                && sys::make_mounts_private().is_ok()
                && apply::mount_overlay_classic(&LinuxSyscall, &overlay).is_ok()
                && std::fs::read_to_string(dir.join("merged/a")).is_ok_and(|s| s == "1")
                && std::fs::read_to_string(dir.join("merged/b")).is_ok_and(|s| s == "2");
            sys::exit_now(if ok { 0 } else { 1 });
        }
        let Forked::Parent(pid) = forked else { unreachable!() };
        let ended = sys::wait_for(pid).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(ended, sys::Ended::Exited(0));
        assert!(Path::new("/").exists());
    }
}
