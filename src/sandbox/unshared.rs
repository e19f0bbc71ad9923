//! Work on files as the root of a user namespace with the rootless mapping.
//!
//! - Why: a rootless RUN can leave files owned by subordinate ids that shut out
//!   their owner's owner (`mkdir /d && chown 1000 /d && chmod 700 /d`); the
//!   unprivileged caller can neither read nor remove them, the namespace's root can.
//! - [`as_namespace_root`] forks a child into such a namespace (a rootless
//!   sandbox's maps) to do that work.
//! - The namespace is made once per process (its maps cost two runs of the
//!   setuid helpers) and kept by a descriptor; each child joins it with `setns`,
//!   which its creator's uid may do without privilege.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use super::sys::{self, Forked, ForkedChild, Pid, UnshareFlags};
use super::userns;
use crate::idmap::IdMap;

/// The user namespace the helpers join, once made.
static NAMESPACE: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Runs `work` in a forked child that is root of a user namespace with the
/// maps a rootless sandbox gets. `work` writes bytes to the writer it is
/// given; each chunk reaches `read` here as it comes. What `work` returns —
/// a short reply, or its error as text — comes back once it is done.
///
/// The child runs ordinary Rust code after a fork of a multi-threaded
/// process: `work` must not take a lock another thread may hold (stdout,
/// the environment, a rayon pool); allocation is safe with glibc.
pub fn as_namespace_root(
    work: impl FnOnce(&mut dyn io::Write) -> Result<Vec<u8>, String>,
    mut read: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Result<Vec<u8>, String>> {
    let namespace = namespace()?;
    let (data_r, data_w) = sys::pipe()?;
    let (reply_r, reply_w) = sys::pipe()?;
    let parent_pid = sys::getpid();
    // SAFETY: the child leaves only through exit_now (a panic in `work` is
    // caught) and never unwinds into the caller's frames; `work` takes no
    // lock, as this function's contract says.
    let pid = match unsafe { sys::fork() }? {
        Forked::Child(child) => {
            drop((data_r, reply_r));
            work_as_root(child, parent_pid, namespace, data_w, reply_w, work)
        }
        Forked::Parent(pid) => pid,
    };
    drop((data_w, reply_w, namespace));
    let result = collect(&data_r, &reply_r, &mut read);
    drop((data_r, reply_r));
    let ended = sys::wait_for(pid)?;
    match result? {
        Some(verdict) => Ok(verdict),
        None => Err(io::Error::other(format!("the user-namespace helper died ({ended})"))),
    }
}

/// Whether this process can make (or has made) the helpers' user
/// namespace; where the kernel forbids unprivileged user namespaces,
/// callers do without one.
pub fn namespace_available() -> bool {
    namespace().is_ok()
}

/// A descriptor of the helpers' user namespace, made on first use: a child
/// unshares it, this process writes its maps, and the descriptor keeps it
/// after the child is gone.
pub(crate) fn namespace() -> io::Result<OwnedFd> {
    let mut kept = NAMESPACE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fd) = kept.as_ref() {
        return fd.try_clone();
    }
    let map = IdMap::rootless();
    let (parent_end, child_end) = sys::socketpair()?;
    let parent_pid = sys::getpid();
    // SAFETY: the child makes only system calls and leaves with exit_now.
    let pid = match unsafe { sys::fork() }? {
        Forked::Child(_) => {
            // The parent's end closes here, so that the parent's close is EOF.
            drop(parent_end);
            sys::die_with_parent(parent_pid);
            let mut byte = [0u8; 1];
            // Unshared, told the parent, and held until the parent is done.
            let code = if sys::unshare(UnshareFlags::NEWUSER).is_ok() && sys::write(&child_end, b"1").is_ok()
            {
                let _ = sys::read(&child_end, &mut byte);
                0
            } else {
                1
            };
            sys::exit_now(code)
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_end);
    let made = (|| {
        let mut byte = [0u8; 1];
        if sys::read(&parent_end, &mut byte)? != 1 {
            return Err(io::Error::other(
                "cannot make a user namespace (unprivileged user namespaces may be disabled: see \
                 /proc/sys/user/max_user_namespaces, kernel.unprivileged_userns_clone, \
                 kernel.apparmor_restrict_unprivileged_userns)",
            ));
        }
        userns::write_maps(&map, pid.as_raw_pid())
            .map_err(|e| io::Error::other(format!("cannot write the id maps: {e}")))?;
        let path = format!("/proc/{}/ns/user", pid.as_raw_pid());
        let file =
            std::fs::File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        Ok(OwnedFd::from(file))
    })();
    drop(parent_end);
    sys::wait_for(pid)?;
    let fd = made?;
    let copy = fd.try_clone()?;
    *kept = Some(fd);
    Ok(copy)
}

/// The parent's side: pass the child's bytes on, then read its verdict
/// (`None` when it died before sending one).
fn collect(
    data: &OwnedFd,
    reply: &OwnedFd,
    read: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Option<Result<Vec<u8>, String>>> {
    let mut buf = vec![0u8; 1 << 16];
    let mut failed = None;
    loop {
        let n = sys::read(data, &mut buf)?;
        if n == 0 {
            break;
        }
        if failed.is_none()
            && let Err(e) = read(&buf[..n])
        {
            // Keep draining so the child can finish and be reaped.
            failed = Some(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let mut verdict = Vec::new();
    loop {
        let n = sys::read(reply, &mut buf)?;
        if n == 0 {
            break;
        }
        verdict.extend_from_slice(&buf[..n]);
    }
    Ok(match verdict.split_first() {
        Some((b'+', reply)) => Some(Ok(reply.to_vec())),
        Some((b'-', message)) => Some(Err(String::from_utf8_lossy(message).into_owned())),
        _ => None,
    })
}

/// The child of [`as_namespace_root`]: joins the namespace, runs `work`
/// and sends its verdict.
fn work_as_root(
    child: ForkedChild,
    parent_pid: Pid,
    namespace: OwnedFd,
    data: OwnedFd,
    reply: OwnedFd,
    work: impl FnOnce(&mut dyn io::Write) -> Result<Vec<u8>, String>,
) -> ! {
    sys::die_with_parent(parent_pid);
    // Descriptors other threads opened (other sandboxes' pipes) must not
    // stay open here and delay their EOF.
    let mut keep = vec![0, 1, 2, namespace.as_raw_fd(), data.as_raw_fd(), reply.as_raw_fd()];
    keep.sort_unstable();
    child.close_all_except(&keep);
    if sys::join_user_namespace(&namespace).is_err() {
        sys::exit_now(1);
    }
    drop(namespace);
    let verdict = {
        let mut out = std::fs::File::from(data);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut out)));
        drop(out);
        match result {
            Ok(Ok(reply)) => [&b"+"[..], &reply].concat(),
            Ok(Err(message)) => [&b"-"[..], message.as_bytes()].concat(),
            Err(_) => b"-the user-namespace helper panicked".to_vec(),
        }
    };
    let code = if sys::write_all(&reply, &verdict).is_ok() { 0 } else { 1 };
    sys::exit_now(code)
}
