//! Whether overlayfs can be mounted here, found by trying.
//!
//! - A child process unshares a mount namespace (and a user namespace when not
//!   root, mapping itself to root as a rootless sandbox would), mounts an
//!   overlay made in a scratch directory, and exits; the mount dies with its
//!   namespace.
//! - The child is a fork of a threaded process: it makes only system calls on
//!   data prepared before the fork.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, WaitOptions};
use rustix::thread::UnshareFlags;

use super::RootDescription;
use super::working::remove_tree;

static PROBE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Whether an overlay with upper and work dirs inside `dir` can be mounted
/// by this process (in a mount namespace of its own, and a user namespace
/// if not root), with the options [`RootDescription::overlay_options`]
/// gives. Fails closed: any error means no.
pub fn overlay_supported(dir: &Path) -> bool {
    let n = PROBE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = dir.join(format!("probe-{}-{n}", std::process::id()));
    let supported = try_mount(&base).unwrap_or(false);
    let _ = remove_tree(&base);
    supported
}

fn try_mount(base: &Path) -> std::io::Result<bool> {
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| base.join(d));
    for path in [&lower, &upper, &work, &merged] {
        fs::create_dir_all(path)?;
    }
    fs::write(lower.join("file"), b"")?;
    let root = !crate::idmap::rootless();
    let description = RootDescription::Overlay { lower: vec![lower], upper, work };
    let Some(options) = description.overlay_options(!root) else { return Ok(false) };
    let c = |s: &[u8]| CString::new(s).map_err(std::io::Error::other);
    // Everything the child needs is made before fork: after fork in a
    // threaded process only async-signal-safe calls are allowed, and
    // rustix's calls with C strings are plain system calls.
    let options = c(options.as_bytes())?;
    let target = c(merged.as_os_str().as_bytes())?;
    let overlay = c(b"overlay")?;
    let uid_map = c(format!("0 {} 1", crate::idmap::effective_uid()).as_bytes())?;
    let gid_map = c(format!("0 {} 1", crate::idmap::effective_gid()).as_bytes())?;
    let deny = c(b"deny")?;
    let [setgroups_path, uid_map_path, gid_map_path] =
        [&b"/proc/self/setgroups"[..], b"/proc/self/uid_map", b"/proc/self/gid_map"].map(|p| c(p).unwrap());
    let namespaces = if root { UnshareFlags::NEWNS } else { UnshareFlags::NEWNS | UnshareFlags::NEWUSER };

    // SAFETY: the child makes only system calls on data prepared above and
    // leaves with _exit; it never returns into this function's callers.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        let write_file = |path: &CString, data: &CString| {
            let Ok(fd) = rustix::fs::open(path.as_c_str(), OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
            else {
                return false;
            };
            rustix::io::write(&fd, data.as_bytes()).is_ok_and(|n| n == data.as_bytes().len())
        };
        // SAFETY: the flags do not include FILES, the only one rustix's
        // contract is about.
        if unsafe { rustix::thread::unshare_unsafe(namespaces) }.is_err() {
            exit_now(1);
        }
        let mapped = root
            || (write_file(&setgroups_path, &deny)
                && write_file(&uid_map_path, &uid_map)
                && write_file(&gid_map_path, &gid_map));
        if !mapped {
            exit_now(2);
        }
        use rustix::mount::{MountFlags, MountPropagationFlags};
        if rustix::mount::mount_change(c"/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)
            .is_err()
        {
            exit_now(3);
        }
        let mounted = rustix::mount::mount(
            overlay.as_c_str(),
            target.as_c_str(),
            overlay.as_c_str(),
            MountFlags::empty(),
            options.as_c_str(),
        );
        exit_now(if mounted.is_ok() { 0 } else { 4 });
    }
    let pid = Pid::from_raw(pid).ok_or_else(|| std::io::Error::other("fork returned a bad pid"))?;
    let status = loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => break status,
            Ok(None) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    };
    Ok(status.exit_status() == Some(0))
}

/// Ends the forked child at once, running nothing of the parent's.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}
