//! Work on files as the root of a user namespace with the rootless mapping.
//!
//! A rootless RUN can leave files owned by subordinate ids, with modes that
//! shut out their owner's owner: `mkdir /d && chown 1000 /d && chmod 700
//! /d`. The unprivileged caller can neither read nor remove them; the root
//! of a user namespace that maps those ids can, as it can in the sandbox.
//! [`as_namespace_root`] forks a child into such a namespace (the same maps
//! as a rootless sandbox) to do that work.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::idmap::IdMaps;
use super::sys;

/// Runs `work` in a forked child that is root of a new user namespace with
/// the maps a rootless sandbox gets. `work` writes bytes to the descriptor
/// it is given; each chunk reaches `read` here as it comes. What `work`
/// returns — a short reply, or its error as text — comes back once it is
/// done.
///
/// The child runs ordinary Rust code after a fork of a multi-threaded
/// process: `work` must not take a lock another thread may hold (stdout,
/// the environment, a rayon pool); allocation is safe with glibc.
pub fn as_namespace_root(
    work: impl FnOnce(&mut dyn io::Write) -> Result<Vec<u8>, String>,
    mut read: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Result<Vec<u8>, String>> {
    let maps = IdMaps::for_current_user();
    let (data_r, data_w) = sys::pipe()?;
    let (sync_parent, sync_child) = sys::socketpair()?;
    let parent_pid = unsafe { libc::getpid() };
    // SAFETY: the child leaves only through _exit and never unwinds into
    // the caller's frames.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        drop((data_r, sync_parent));
        child(parent_pid, data_w, sync_child, work);
    }
    drop((data_w, sync_child));
    let result = talk_to_child(pid, &maps, &data_r, &sync_parent, &mut read);
    drop((data_r, sync_parent));
    let mut status = 0;
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    match result? {
        Some(verdict) => Ok(verdict),
        None => Err(io::Error::other(format!("the user-namespace helper died (wait status {status})"))),
    }
}

/// The parent's side: map the child's ids, pass its bytes on, read its
/// verdict (`None` when it died before sending one).
fn talk_to_child(
    pid: libc::pid_t,
    maps: &IdMaps,
    data: &OwnedFd,
    sync: &OwnedFd,
    read: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Option<Result<Vec<u8>, String>>> {
    let mut byte = [0u8; 1];
    if sys::read(sync.as_raw_fd(), &mut byte)? != 1 {
        return Err(io::Error::other("the user-namespace helper could not unshare its user namespace"));
    }
    let mapped = maps.apply(pid);
    if let Err(e) = mapped {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return Err(io::Error::other(format!("cannot write the helper's id maps: {e}")));
    }
    sys::write_all(sync.as_raw_fd(), b"1")?;
    let mut buf = vec![0u8; 1 << 16];
    let mut failed = None;
    loop {
        let n = sys::read(data.as_raw_fd(), &mut buf)?;
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
        let n = sys::read(sync.as_raw_fd(), &mut buf)?;
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

fn child(
    parent_pid: libc::pid_t,
    data: OwnedFd,
    sync: OwnedFd,
    work: impl FnOnce(&mut dyn io::Write) -> Result<Vec<u8>, String>,
) -> ! {
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent_pid {
            libc::_exit(1);
        }
    }
    // Descriptors other threads opened (other sandboxes' pipes) must not
    // stay open here and delay their EOF.
    let mut keep = vec![0, 1, 2, data.as_raw_fd(), sync.as_raw_fd()];
    keep.sort_unstable();
    sys::close_all_except(&keep);
    let mut byte = [0u8; 1];
    let ready = sys::unshare(libc::CLONE_NEWUSER).is_ok()
        && sys::write_all(sync.as_raw_fd(), b"1").is_ok()
        && matches!(sys::read(sync.as_raw_fd(), &mut byte), Ok(1));
    if !ready {
        unsafe { libc::_exit(1) };
    }
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
    let code = if sys::write_all(sync.as_raw_fd(), &verdict).is_ok() { 0 } else { 1 };
    unsafe { libc::_exit(code) }
}
