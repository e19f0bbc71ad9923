//! Whether overlayfs can be mounted here, found by trying: a child process
//! unshares a mount namespace (and a user namespace when not root, mapping
//! itself to root as a rootless sandbox would), mounts an overlay made in
//! a scratch directory, and exits; the mount dies with its namespace.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

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
    let root = rustix::process::geteuid().is_root();
    let description = RootDescription::Overlay { lower: vec![lower], upper, work };
    let Some(options) = description.overlay_options(!root) else { return Ok(false) };
    let c = |s: &[u8]| CString::new(s).map_err(std::io::Error::other);
    // Everything the child needs is made before fork: after fork in a
    // threaded process only async-signal-safe calls are allowed.
    let options = c(options.as_bytes())?;
    let target = c(merged.as_os_str().as_bytes())?;
    let overlay = c(b"overlay")?;
    let slash = c(b"/")?;
    let uid_map = c(format!("0 {} 1", rustix::process::geteuid().as_raw()).as_bytes())?;
    let gid_map = c(format!("0 {} 1", rustix::process::getegid().as_raw()).as_bytes())?;
    let deny = c(b"deny")?;
    let [setgroups_path, uid_map_path, gid_map_path] =
        [&b"/proc/self/setgroups"[..], b"/proc/self/uid_map", b"/proc/self/gid_map"].map(|p| c(p).unwrap());
    let flags = if root { libc::CLONE_NEWNS } else { libc::CLONE_NEWNS | libc::CLONE_NEWUSER };

    // SAFETY: the child calls only raw system calls on data prepared above
    // and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe {
            let write_file = |path: &CString, data: &CString| {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return false;
                }
                let len = data.as_bytes().len();
                let ok = libc::write(fd, data.as_ptr().cast(), len) == len as isize;
                libc::close(fd);
                ok
            };
            if libc::unshare(flags) != 0 {
                libc::_exit(1);
            }
            let mapped = root
                || (write_file(&setgroups_path, &deny)
                    && write_file(&uid_map_path, &uid_map)
                    && write_file(&gid_map_path, &gid_map));
            if !mapped {
                libc::_exit(2);
            }
            let private = (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong;
            if libc::mount(std::ptr::null(), slash.as_ptr(), std::ptr::null(), private, std::ptr::null()) != 0
            {
                libc::_exit(3);
            }
            let mounted =
                libc::mount(overlay.as_ptr(), target.as_ptr(), overlay.as_ptr(), 0, options.as_ptr().cast());
            libc::_exit(if mounted == 0 { 0 } else { 4 });
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for the child forked above.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}
