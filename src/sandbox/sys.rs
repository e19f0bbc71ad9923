//! Every system call the sandbox makes, as small `io::Result` functions.
//!
//! - rustix's safe wrappers wherever rustix has the call (mounts, pivot_root,
//!   namespaces, pipes, capabilities, credentials, limits, openat2, poll…).
//! - Raw libc only where rustix has no safe form: fork, exec, waiting with
//!   `__WALL`, signal dispositions and handlers (the parent-death notice,
//!   the caller's forwarding, the init's forwarding), `close_range`,
//!   `kill(-1)` and the interface-flags ioctl; each `unsafe` block says why
//!   it is sound.
//! - Terminals (a pty in the sandbox's devpts, raw mode, window sizes) and
//!   passing a descriptor over a socket, through rustix.
//! - The only file of the sandbox that names libc.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

pub(crate) use rustix::event::{PollFd, PollFlags};
pub(crate) use rustix::io::Errno;
pub(crate) use rustix::mount::MountFlags;
pub(crate) use rustix::process::{Pid, Resource, Signal};
pub(crate) use rustix::thread::UnshareFlags;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatVfsMountFlags};

/// `s` as a C string, refusing an inner NUL byte.
pub(crate) fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

/// This process's pid.
pub(crate) fn getpid() -> Pid {
    rustix::process::getpid()
}

// --- Processes -------------------------------------------------------------

/// Which side of a [`fork`] this is.
pub(crate) enum Forked {
    /// The new process; the token allows what only a fresh child may do.
    Child(ForkedChild),
    /// The caller, with the child's pid.
    Parent(Pid),
}

/// Held only by the child of a [`fork`], which never returns into the
/// frames it copied from its parent.
pub(crate) struct ForkedChild(());

/// `fork()`. The child is a copy of a possibly multi-threaded process in
/// which only the calling thread exists; allocation stays usable there
/// (glibc resets its malloc locks in the child).
///
/// # Safety
/// The child must leave through [`exit_now`] or an exec, never return or
/// unwind into the caller's frames, and take no lock another thread may
/// hold (stdio, the environment, a thread pool).
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: fork takes no arguments; what the child may then do is the
    // caller's contract above.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child(ForkedChild(()))),
        pid => {
            Pid::from_raw(pid).map(Forked::Parent).ok_or_else(|| io::Error::other("fork returned a bad pid"))
        }
    }
}

impl ForkedChild {
    /// Closes every descriptor not in `keep` (sorted): other threads of the
    /// parent may have had pipes open that must not stay open here.
    pub(crate) fn close_all_except(&self, keep: &[RawFd]) {
        let mut next: libc::c_uint = 0;
        for &fd in keep {
            let fd = fd as libc::c_uint;
            if fd > next {
                close_range(next, fd - 1, 0);
            }
            next = fd + 1;
        }
        close_range(next, libc::c_uint::MAX, 0);
    }
}

fn close_range(first: libc::c_uint, last: libc::c_uint, flags: libc::c_uint) {
    // SAFETY: close_range takes no pointers. Closing descriptors that values
    // in the copied frames own is sound only in a forked child, which never
    // uses or drops those values: callers hold a `ForkedChild`, or pass
    // CLOSE_RANGE_CLOEXEC, which closes nothing.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
}

/// Marks every descriptor from `first` on close-on-exec.
pub(crate) fn cloexec_from(first: RawFd) {
    close_range(first as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC);
}

/// Ends this process at once, running no destructors or atexit handlers:
/// the way out of a forked child.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// `execve(path, argv, env)`; returns only when it failed, with why.
pub(crate) fn execve(path: &CStr, argv: &[CString], env: &[CString]) -> io::Error {
    let pointers = |strings: &[CString]| -> Vec<*const libc::c_char> {
        strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
    };
    let (argv, env) = (pointers(argv), pointers(env));
    // SAFETY: `path` and every string are NUL-terminated and outlive the
    // call; both arrays end with the null pointer execve requires.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), env.as_ptr()) };
    io::Error::last_os_error()
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Exited(i32),
    Signaled(i32),
}

impl Ended {
    /// As a shell reports it: the exit code, or 128 + the signal.
    pub(crate) fn code(self) -> i32 {
        match self {
            Ended::Exited(code) => code,
            Ended::Signaled(signal) => 128 + signal,
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exit status {code}"),
            Ended::Signaled(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// One `waitpid` with `__WALL` (rustix has no such option): the init of a
/// pid namespace must reap children cloned with any exit signal.
fn waitpid(pid: libc::pid_t) -> io::Result<(Pid, Ended)> {
    let mut status = 0;
    // SAFETY: `status` is a live int waitpid writes to.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    if r <= 0 {
        return Err(io::Error::last_os_error());
    }
    let pid = Pid::from_raw(r).ok_or_else(|| io::Error::other("waitpid returned a bad pid"))?;
    let ended = if libc::WIFEXITED(status) {
        Ended::Exited(libc::WEXITSTATUS(status))
    } else {
        Ended::Signaled(libc::WTERMSIG(status))
    };
    Ok((pid, ended))
}

/// Waits for the child `pid` to end, through interruptions.
pub(crate) fn wait_for(pid: Pid) -> io::Result<Ended> {
    loop {
        match waitpid(pid.as_raw_pid()) {
            Ok((_, ended)) => return Ok(ended),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Waits for any child to end; an interruption is returned, so that the
/// caller can look at what a signal handler set.
pub(crate) fn wait_any() -> io::Result<(Pid, Ended)> {
    waitpid(-1)
}

/// Sends `signal` to `pid`.
pub(crate) fn kill(pid: Pid, signal: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process(pid, signal)?)
}

/// SIGKILL to every process this one may signal: from a pid namespace's
/// init, everything in the namespace. rustix's `Pid` cannot be -1.
pub(crate) fn kill_every_process() {
    // SAFETY: kill takes no pointers.
    unsafe { libc::kill(-1, libc::SIGKILL) };
}

/// A pidfd for the child `pid`, readable once it has ended.
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?)
}

/// Dies with SIGKILL when the parent thread dies, and at once if the parent
/// `parent` is already gone (it may have died before the request).
pub(crate) fn die_with_parent(parent: Pid) {
    let asked = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    if asked.is_err() || rustix::process::getppid() != Some(parent) {
        exit_now(1);
    }
}

/// Set by [`on_parent_death`] once the kernel reported the parent's death.
static PARENT_DIED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_parent_death(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes an SA_SIGINFO handler a valid siginfo.
    let sender = unsafe { (*info).si_pid() };
    // Only the kernel's parent-death signal comes from outside the pid
    // namespace (pid 0 here); the sandboxed processes cannot fake it.
    if sender == 0 {
        PARENT_DIED.store(true, Ordering::SeqCst);
    }
}

/// Learns of the parent's death by SIGUSR1 instead of dying at once (see
/// [`parent_died`]). The handler has no SA_RESTART, so a wait is interrupted.
pub(crate) fn notify_on_parent_death() -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value of the plain C struct.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_parent_death as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: sigemptyset writes the live set it is given; sigaction reads
    // the live `action`, whose handler only stores to an atomic, which is
    // async-signal-safe.
    let r = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut())
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rustix::process::set_parent_process_death_signal(Some(Signal::USR1))?)
}

/// Whether the parent-death signal [`notify_on_parent_death`] asked for came.
pub(crate) fn parent_died() -> bool {
    PARENT_DIED.load(Ordering::SeqCst)
}

/// The parent-death check of an init that keeps its parent's pipe (see
/// [`watch_parent_pipe`]): the signal came, or the pipe already hung up.
pub(crate) fn parent_gone() -> bool {
    parent_died() || parent_pipe_hung_up()
}

/// The read end of a pipe only the init's parent holds open, when the init
/// keeps it (see [`watch_parent_pipe`]); -1 otherwise.
static LIFE_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Has the init tell its parent's death from a forwarded SIGUSR1 by `life`,
/// a pipe whose write end only the parent holds: it hangs up when the
/// parent is gone. The descriptor stays open for the init's life.
pub(crate) fn watch_parent_pipe(life: OwnedFd) {
    use std::os::fd::IntoRawFd;
    LIFE_PIPE.store(life.into_raw_fd(), Ordering::SeqCst);
}

/// Whether the pipe of [`watch_parent_pipe`] hung up; poll is
/// async-signal-safe, so handlers may ask.
fn parent_pipe_hung_up() -> bool {
    let fd = LIFE_PIPE.load(Ordering::SeqCst);
    if fd < 0 {
        return false;
    }
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: `poll` is one live pollfd; poll takes no other pointer.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// The host-visible pid the init forwards signals to (its child, pid 2);
/// 0 before there is one.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_forwarded_signal(signal: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if signal == libc::SIGUSR1 && parent_pipe_hung_up() {
        PARENT_DIED.store(true, Ordering::SeqCst);
        return;
    }
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill takes no pointers and is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    }
}

/// The signals `hoist run` passes on: what `docker run`'s signal proxy
/// passes, less those the kernel raises for faults, and SIGCHLD.
pub(crate) const FORWARDED_SIGNALS: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGCONT,
    libc::SIGWINCH,
];

/// Makes the init pass every signal of [`FORWARDED_SIGNALS`] on to `child`
/// the moment it arrives (from the handler itself, so none is lost between
/// a check and a wait). SIGUSR1 is also the parent-death notice: the
/// handler tells the two apart by the pipe of [`watch_parent_pipe`]. No
/// SA_RESTART, so a wait is interrupted.
pub(crate) fn forward_signals_to(child: Pid) -> io::Result<()> {
    FORWARD_TO.store(child.as_raw_pid(), Ordering::SeqCst);
    for &signal in FORWARDED_SIGNALS {
        install_handler(signal, on_forwarded_signal)?;
    }
    Ok(())
}

/// Installs `handler` (SA_SIGINFO, nothing blocked, no SA_RESTART) for `signal`.
fn install_handler(
    signal: libc::c_int,
    handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
) -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value of the plain C struct.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: sigemptyset writes the live set it is given; sigaction reads
    // the live `action`, whose handlers use only async-signal-safe calls
    // and atomics.
    let r = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut())
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The write end of the caller's signal pipe while signals are caught.
static CAUGHT_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_caught_signal(signal: libc::c_int) {
    let fd = CAUGHT_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write is async-signal-safe and reads one live byte; a full
        // pipe drops the signal (the pipe is non-blocking).
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// The caller's handlers while [`catch_signals`] holds; restored on drop.
pub(crate) struct CaughtSignals {
    previous: Vec<(libc::c_int, libc::sigaction)>,
    _pipe: OwnedFd,
}

/// Catches `signals` in this (the calling) process until the guard drops:
/// each one that arrives is written, as a byte, to the returned pipe's read
/// end, which a poll loop can watch. Process-wide: one guard at a time.
pub(crate) fn catch_signals(signals: &[i32]) -> io::Result<(CaughtSignals, OwnedFd)> {
    let (read, write) = pipe()?;
    set_nonblocking(&read)?;
    set_nonblocking(&write)?;
    CAUGHT_PIPE.store(write.as_raw_fd(), Ordering::SeqCst);
    let mut guard = CaughtSignals { previous: Vec::new(), _pipe: write };
    for &signal in signals {
        // SAFETY: an all-zero sigaction is a valid value of the plain C struct.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above, for the previous action's buffer.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_caught_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: sigemptyset writes the live set; sigaction reads the live
        // `action` and writes the live `previous`; the handler only writes
        // to a pipe, which is async-signal-safe.
        let r = unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, &mut previous)
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        guard.previous.push((signal, previous));
    }
    Ok((guard, read))
}

impl Drop for CaughtSignals {
    fn drop(&mut self) {
        for (signal, previous) in self.previous.drain(..).rev() {
            // SAFETY: sigaction reads the live action saved when catching began.
            unsafe { libc::sigaction(signal, &previous, std::ptr::null_mut()) };
        }
        CAUGHT_PIPE.store(-1, Ordering::SeqCst);
    }
}

/// Asks for SIGKILL when the parent dies, and exits at once if it already
/// has, as told by the pipe of [`watch_parent_pipe`]: the last step of a
/// process that is about to exec as the sandbox's pid 1. (A change of
/// credentials clears the request, so it comes after setuid.)
pub(crate) fn die_with_parent_now() -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    if parent_pipe_hung_up() {
        exit_now(1);
    }
    Ok(())
}

/// Default dispositions for every signal and an empty signal mask: the
/// caller may ignore SIGPIPE (Rust does) or block signals, and ignored
/// dispositions and the mask survive exec.
pub(crate) fn reset_signals() {
    for signal in 1..32 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler of ours.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
    // SAFETY: an all-zero sigset_t is a valid value; sigemptyset and
    // sigprocmask write and read only the live local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

// --- Descriptors -----------------------------------------------------------

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// A close-on-exec pair of connected Unix stream sockets.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    Ok(rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?)
}

/// Makes reads and writes on `fd` fail with `WouldBlock` instead of waiting.
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    Ok(rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?)
}

/// `read`, retried when interrupted.
pub(crate) fn read(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(&fd, &mut *buf) {
            Err(Errno::INTR) => {}
            other => return Ok(other?),
        }
    }
}

/// `write`, retried when interrupted.
pub(crate) fn write(fd: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::io::write(&fd, buf) {
            Err(Errno::INTR) => {}
            other => return Ok(other?),
        }
    }
}

/// Writes all of `buf`.
pub(crate) fn write_all(fd: impl AsFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = write(&fd, buf)?;
        buf = &buf[n..];
    }
    Ok(())
}

/// Makes `fd` the process's standard input, output or error (`target` 0,
/// 1 or 2), inherited across exec.
pub(crate) fn dup_to_stdio(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    if fd.as_raw_fd() == target {
        // dup2 onto itself would keep FD_CLOEXEC; clear it instead.
        return Ok(rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?);
    }
    match target {
        0 => rustix::stdio::dup2_stdin(fd),
        1 => rustix::stdio::dup2_stdout(fd),
        2 => rustix::stdio::dup2_stderr(fd),
        _ => return Err(io::Error::other(format!("descriptor {target} is not standard I/O"))),
    }?;
    Ok(())
}

/// `poll`, waiting at most `timeout` (forever when `None`).
pub(crate) fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout = timeout.map(|t| rustix::event::Timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    Ok(rustix::event::poll(fds, timeout.as_ref())?)
}

// --- Namespaces and credentials ---------------------------------------------

/// Joins the user namespace `fd` refers to.
pub(crate) fn join_user_namespace(fd: impl AsFd) -> io::Result<()> {
    use rustix::thread::LinkNameSpaceType;
    Ok(rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::User))?)
}

/// Moves this process into new namespaces of the kinds in `flags`.
pub(crate) fn unshare(flags: UnshareFlags) -> io::Result<()> {
    // Unsharing the descriptor table could leave other threads' descriptors
    // unusable here; no namespace the sandbox makes needs it.
    let flags = flags - UnshareFlags::FILES;
    // SAFETY: the flags do not include FILES (removed above), the only one
    // rustix's contract is about.
    Ok(unsafe { rustix::thread::unshare_unsafe(flags) }?)
}

/// Sets the UTS namespace's hostname.
pub(crate) fn sethostname(name: &str) -> io::Result<()> {
    Ok(rustix::system::sethostname(name.as_bytes())?)
}

/// Starts a new session, detached from the caller's terminal.
pub(crate) fn setsid() -> io::Result<()> {
    rustix::process::setsid()?;
    Ok(())
}

/// Sets the file mode creation mask.
pub(crate) fn set_umask(mask: u32) {
    rustix::process::umask(Mode::from_raw_mode(mask));
}

/// Sets a resource limit (`u64::MAX` is unlimited).
pub(crate) fn set_rlimit(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let limit = rustix::process::Rlimit { current: Some(soft), maximum: Some(hard) };
    Ok(rustix::process::setrlimit(resource, limit)?)
}

/// Sets the supplementary groups. The thread-level call is the process's
/// in a forked child, the only thread there.
pub(crate) fn set_groups(gids: &[u32]) -> io::Result<()> {
    let gids: Vec<rustix::fs::Gid> = gids.iter().map(|&g| rustix::fs::Gid::from_raw(g)).collect();
    Ok(rustix::thread::set_thread_groups(&gids)?)
}

/// Sets the real, effective and saved gid (of the only thread, see [`set_groups`]).
pub(crate) fn set_gid(gid: u32) -> io::Result<()> {
    let gid = rustix::fs::Gid::from_raw(gid);
    Ok(rustix::thread::set_thread_res_gid(gid, gid, gid)?)
}

/// Sets the real, effective and saved uid (of the only thread, see [`set_groups`]).
pub(crate) fn set_uid(uid: u32) -> io::Result<()> {
    let uid = rustix::fs::Uid::from_raw(uid);
    Ok(rustix::thread::set_thread_res_uid(uid, uid, uid)?)
}

/// Drops capability `cap` from the bounding set; `Ok(false)` when the
/// kernel knows no such capability.
pub(crate) fn drop_from_bounding_set(cap: u32) -> io::Result<bool> {
    let set = rustix::thread::CapabilitySet::from_bits_retain(1 << cap);
    match rustix::thread::remove_capability_from_bounding_set(set) {
        Ok(()) => Ok(true),
        Err(Errno::INVAL) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Empties the ambient capability set.
pub(crate) fn clear_ambient_capabilities() -> io::Result<()> {
    Ok(rustix::thread::clear_ambient_capability_set()?)
}

/// The permitted capability set of the calling thread, as a bit mask.
pub(crate) fn permitted_capabilities() -> io::Result<u64> {
    Ok(rustix::thread::capabilities(None)?.permitted.bits())
}

/// Sets effective and permitted to `mask`, inheritable to empty.
pub(crate) fn set_capabilities(mask: u64) -> io::Result<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets};
    let set = CapabilitySet::from_bits_retain(mask);
    let sets = CapabilitySets { effective: set, permitted: set, inheritable: CapabilitySet::empty() };
    Ok(rustix::thread::set_capabilities(None, sets)?)
}

/// Sets no_new_privs: exec can no longer grant privileges.
pub(crate) fn set_no_new_privs() -> io::Result<()> {
    Ok(rustix::thread::set_no_new_privs(true)?)
}

// --- Files and mounts --------------------------------------------------------

/// Changes the working directory.
pub(crate) fn chdir(path: &Path) -> io::Result<()> {
    Ok(rustix::process::chdir(path)?)
}

/// Gives `path` (following symlinks) to `uid` and `gid`.
pub(crate) fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    Ok(rustix::fs::chown(path, Some(uid), Some(gid))?)
}

/// Gives `path` (a symlink itself, not its target) to `uid` and `gid`.
pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    Ok(rustix::fs::chownat(rustix::fs::CWD, path, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?)
}

/// Sets the access and modification times (seconds, nanoseconds) of `path`,
/// a symlink itself rather than its target.
pub(crate) fn set_times_nofollow(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let time = |(tv_sec, tv_nsec): (i64, i64)| rustix::fs::Timespec { tv_sec, tv_nsec };
    let times = rustix::fs::Timestamps { last_access: time(atime), last_modification: time(mtime) };
    Ok(rustix::fs::utimensat(rustix::fs::CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// Makes every mount below `/` private, recursively: nothing mounted from
/// now on propagates to the host, and no host mount event reaches here.
pub(crate) fn make_mounts_private() -> io::Result<()> {
    use rustix::mount::MountPropagationFlags;
    Ok(rustix::mount::mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)?)
}

/// Mounts a new filesystem of type `fstype` (also its source) on `target`.
pub(crate) fn mount(fstype: &str, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
    let data = cstr(data)?;
    Ok(rustix::mount::mount(fstype, target, fstype, flags, data.as_c_str())?)
}

/// Binds `source` onto `target`, with the mounts below it when `recursive`.
pub(crate) fn bind(source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
    if recursive {
        Ok(rustix::mount::mount_bind_recursive(source, target)?)
    } else {
        Ok(rustix::mount::mount_bind(source, target)?)
    }
}

/// Remounts the bind mount at `target` with `flags`.
pub(crate) fn remount_bind(target: &Path, flags: MountFlags) -> io::Result<()> {
    Ok(rustix::mount::mount_remount(target, MountFlags::BIND | flags, "")?)
}

/// The flags of the mount at `target` that a remount must keep: in a user
/// namespace the kernel locks nosuid, nodev, noexec and the atime flags.
pub(crate) fn locked_mount_flags(target: &Path) -> io::Result<MountFlags> {
    let flags = rustix::fs::statvfs(target)?.f_flag;
    let mut locked = MountFlags::empty();
    for (st, ms) in [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ] {
        if flags.contains(st) {
            locked |= ms;
        }
    }
    Ok(locked)
}

/// Detaches the mount at `target` (lazily, as `umount -l`).
pub(crate) fn unmount_detach(target: &Path) -> io::Result<()> {
    Ok(rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?)
}

/// `pivot_root(new_root, put_old)`.
pub(crate) fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    Ok(rustix::process::pivot_root(new_root, put_old)?)
}

/// The size of a memory page, which bounds `mount(2)` option strings.
pub(crate) fn page_size() -> usize {
    rustix::param::page_size()
}

/// Why a mount with the new mount API failed.
pub(crate) enum FsconfigError {
    /// `fsopen` failed: the kernel may not have the new mount API (ENOSYS).
    Open(io::Error),
    /// Parameter `index` was refused.
    Parameter { index: usize, error: io::Error },
    /// Creating or attaching the filesystem failed, at this step.
    Mount { step: &'static str, error: io::Error },
}

/// Mounts a `fstype` filesystem on `target` with the new mount API:
/// fsopen, one fsconfig per parameter (a string value, or a flag when
/// `None`), create, fsmount and move_mount. No option-string size limit.
pub(crate) fn mount_with_fsconfig(
    fstype: &str,
    parameters: &[(String, Option<String>)],
    target: &Path,
) -> Result<(), FsconfigError> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| FsconfigError::Open(e.into()))?;
    for (index, (key, value)) in parameters.iter().enumerate() {
        let set = match value {
            Some(value) => rustix::mount::fsconfig_set_string(&fs, key.as_str(), value.as_str()),
            None => rustix::mount::fsconfig_set_flag(&fs, key.as_str()),
        };
        set.map_err(|e| FsconfigError::Parameter { index, error: e.into() })?;
    }
    let at = |step| move |e: Errno| FsconfigError::Mount { step, error: e.into() };
    rustix::mount::fsconfig_create(&fs).map_err(at("create"))?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(at("fsmount"))?;
    rustix::mount::move_mount(&mnt, "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(at("attach"))
}

/// Opens `rel` beneath `root` for reading, resolving symlinks as if `root`
/// were `/`.
pub(crate) fn open_in_root(root: &Path, rel: &str) -> io::Result<std::fs::File> {
    let root_dir = std::fs::File::open(root)?;
    let fd = rustix::fs::openat2(
        &root_dir,
        rel.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(std::fs::File::from(fd))
}

/// Opens directory `rel` beneath `base` without following any symlink.
pub(crate) fn open_dir_beneath(base: &Path, rel: &Path) -> io::Result<OwnedFd> {
    let base_dir = std::fs::File::open(base)?;
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    Ok(rustix::fs::openat2(
        &base_dir,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )?)
}

/// Removes `name` in `dir` if it is a directory or an empty regular file,
/// never following a symlink; anything else stays.
pub(crate) fn remove_empty_at(dir: impl AsFd, name: &Path) -> io::Result<()> {
    use rustix::fs::FileType;
    let stat = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let flags = match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => AtFlags::REMOVEDIR,
        FileType::RegularFile if stat.st_size == 0 => AtFlags::empty(),
        _ => return Ok(()),
    };
    Ok(rustix::fs::unlinkat(&dir, name, flags)?)
}

// --- Terminals -----------------------------------------------------------------

/// A terminal's window size: rows and columns.
pub(crate) type WindowSize = (u16, u16);

/// A new pseudo-terminal from `/dev/ptmx` of this mount namespace (the
/// sandbox's own devpts): its master, unlocked, and its slave, opened
/// through the master (no path lookup), both close-on-exec.
pub(crate) fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::OpenptFlags;
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::unlockpt(&master)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    Ok((master, slave))
}

/// Makes the terminal `fd` this session's controlling terminal.
pub(crate) fn set_controlling_terminal(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::process::ioctl_tiocsctty(fd)?)
}

/// Gives the open file `fd` to `uid` and `gid`.
pub(crate) fn fchown(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    Ok(rustix::fs::fchown(fd, Some(uid), Some(gid))?)
}

/// Whether `fd` is a terminal.
pub(crate) fn is_terminal(fd: impl AsFd) -> bool {
    rustix::termios::isatty(fd)
}

/// The window size of the terminal `fd`, if it is one and has a size.
pub(crate) fn window_size(fd: impl AsFd) -> Option<WindowSize> {
    let size = rustix::termios::tcgetwinsize(fd).ok()?;
    (size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
}

/// Sets the window size of the terminal `fd` (on a pty master, the kernel
/// then sends SIGWINCH to the slave's foreground process group).
pub(crate) fn set_window_size(fd: impl AsFd, (rows, cols): WindowSize) -> io::Result<()> {
    let size = rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    Ok(rustix::termios::tcsetwinsize(fd, size)?)
}

/// A terminal's settings, as saved before raw mode.
pub(crate) type TerminalSettings = rustix::termios::Termios;

/// Puts the terminal `fd` in raw mode (as cfmakeraw) and returns the
/// settings to restore.
pub(crate) fn make_raw(fd: impl AsFd) -> io::Result<TerminalSettings> {
    use rustix::termios::OptionalActions;
    let saved = rustix::termios::tcgetattr(&fd)?;
    let mut raw = saved.clone();
    raw.make_raw();
    rustix::termios::tcsetattr(&fd, OptionalActions::Now, &raw)?;
    Ok(saved)
}

/// Restores settings [`make_raw`] saved.
pub(crate) fn restore_terminal(fd: impl AsFd, settings: &TerminalSettings) -> io::Result<()> {
    Ok(rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, settings)?)
}

/// Sends `fd` over the Unix socket `socket`, with one byte of data.
pub(crate) fn send_fd(socket: impl AsFd, fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(socket, &[io::IoSlice::new(b"T")], &mut control, SendFlags::NOSIGNAL)?;
    Ok(())
}

/// Receives a descriptor [`send_fd`] sent; `None` at end of stream or when
/// the message carried none.
pub(crate) fn recv_fd(socket: impl AsFd) -> io::Result<Option<OwnedFd>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut byte = [0u8; 1];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        match rustix::net::recvmsg(
            &socket,
            &mut [io::IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => {}
            other => break other?,
        }
    };
    if received.bytes == 0 {
        return Ok(None);
    }
    let mut found = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                found.get_or_insert(fd);
            }
        }
    }
    Ok(found)
}

/// Writes `content` to the existing file `path` (a cgroup control file:
/// one write, no truncation, no creation).
pub(crate) fn write_control_file(path: &Path, content: &str) -> io::Result<()> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    write_all(&fd, content.as_bytes())
}

/// Whether this process may write to `path` (`access(W_OK)`, real ids).
pub(crate) fn writable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
}

/// Whether `path` belongs to this process's effective user.
pub(crate) fn owned_by_me(path: &Path) -> bool {
    rustix::fs::stat(path).is_ok_and(|s| s.st_uid == rustix::process::geteuid().as_raw())
}

/// Removes the empty directory `path` (a cgroup: `rmdir` only).
pub(crate) fn remove_dir(path: &Path) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(rustix::fs::CWD, path, AtFlags::REMOVEDIR)?)
}

/// Brings up `lo` in this network namespace. rustix has no interface-flags
/// call, so this is the classic SIOCGIFFLAGS/SIOCSIFFLAGS ioctl pair.
pub(crate) fn loopback_up() -> io::Result<()> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let sock = rustix::net::socket_with(AddressFamily::INET, SocketType::DGRAM, SocketFlags::CLOEXEC, None)?;
    // SAFETY: an all-zero ifreq is a valid value of the plain C struct.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: both ioctls read and write the live `ifr` the request expects
    // (an ifreq naming the interface); ifru_flags is the union member these
    // requests use.
    let r = unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            -1
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr)
        }
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
