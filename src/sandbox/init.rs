//! The sandbox's side of a run: the three processes below the caller.
//!
//! ```text
//! hoist (caller) ── fork ──▶ A: unshares the namespaces, waits for its id
//!                              maps, forks B, forwards B's end
//!                            B: pid 1 of the new pid namespace: builds the
//!                              root, forks C, reaps everything, kills the
//!                              rest when C ends, reports C's status
//!                            C: pid 2: drops to the user, capabilities and
//!                              limits, execs the command
//! ```
//!
//! A dies with the caller (PR_SET_PDEATHSIG), and B is told when A dies, kills
//! the tree, removes its mount points from the image and exits; when B dies
//! the kernel kills every process of the pid namespace, and every mount lives
//! in the private mount namespace and goes with it. All three run in a fork
//! of a possibly multi-threaded caller, so they take no lock another thread
//! could hold (no stdio, no `std::env`); glibc keeps malloc usable after fork.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::capability;
use super::error::SandboxError;
use super::report::{self, Message};
use super::rootfs::{self, MountPoints, RootPlan, step};
use super::spec::Rlimit;
use super::sys;
use super::user::{ResolvedUser, resolve_user};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Descriptors the children use; -1 for "keep what is inherited".
pub(crate) struct ChildFds {
    pub report: RawFd,
    /// Rootless: the user namespace to join (else -1).
    pub userns: RawFd,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

pub(crate) struct ProcessPlan {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    pub rlimits: Vec<Rlimit>,
    /// Why only uid/gid 0 exist in the namespace, if so.
    pub single_mapping: Option<String>,
    /// Highest uid/gid + 1 mapped (rootless with subordinate ids).
    pub mapped_ids: Option<(u32, u32)>,
}

fn fail(report: RawFd, e: SandboxError) -> ! {
    report::send_message(report, &Message::Error(e));
    unsafe { libc::_exit(1) }
}

/// Process A. Never returns.
pub(crate) fn namespace_parent(
    parent_pid: libc::pid_t,
    netns: bool,
    rootless: bool,
    fds: &ChildFds,
    root_plan: &RootPlan,
    proc_plan: &ProcessPlan,
) -> ! {
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent_pid {
            libc::_exit(1);
        }
    }
    // Other threads of the caller may have descriptors open (other sandboxes'
    // pipes): holding them would keep those pipes from reaching EOF.
    let mut keep: Vec<RawFd> = vec![0, 1, 2, fds.report, fds.userns, fds.stdin, fds.stdout, fds.stderr];
    keep.retain(|&f| f >= 0);
    keep.sort_unstable();
    keep.dedup();
    sys::close_all_except(&keep);

    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWPID;
    if netns {
        flags |= libc::CLONE_NEWNET;
    }
    if rootless {
        if let Err(e) = sys::setns(fds.userns, libc::CLONE_NEWUSER) {
            let step = "join the user namespace".into();
            fail(fds.report, SandboxError::Setup { step, message: e.to_string() });
        }
        unsafe { libc::close(fds.userns) };
    }
    if let Err(e) = sys::unshare(flags) {
        let hint = if rootless {
            " (unprivileged user namespaces may be disabled: see /proc/sys/user/max_user_namespaces, \
             kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns)"
        } else {
            ""
        };
        fail(
            fds.report,
            SandboxError::Setup { step: "unshare namespaces".into(), message: format!("{e}{hint}") },
        );
    }

    // B cannot use getppid() to see whether A died before B asked to be told
    // (it is 0 in a new pid namespace); a pipe only A holds open can.
    let (life_r, life_w) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => fail(fds.report, SandboxError::Setup { step: "pipe".into(), message: e.to_string() }),
    };
    let b = unsafe { libc::fork() };
    if b < 0 {
        fail(
            fds.report,
            SandboxError::Setup { step: "fork init".into(), message: io::Error::last_os_error().to_string() },
        );
    }
    if b == 0 {
        watch_for_orphaning();
        drop(life_w);
        let mut pfd = libc::pollfd { fd: life_r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
            unsafe { libc::_exit(1) };
        }
        drop(life_r);
        init(fds, root_plan, proc_plan);
    }
    drop(life_r);
    // life_w stays open until A exits.
    std::mem::forget(life_w);
    report::send_message(fds.report, &Message::InitPid(b));
    unsafe {
        for fd in [fds.report, fds.stdin, fds.stdout, fds.stderr] {
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(b, &mut status, 0) };
        if r == b {
            break;
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            unsafe { libc::_exit(1) };
        }
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    unsafe { libc::_exit(code) }
}

/// Set (from a signal handler) when A, and so the caller, has died.
static ORPHANED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_orphaned(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only the kernel's parent-death signal comes from outside the namespace
    // (pid 0 here); the sandboxed processes cannot fake it.
    if unsafe { (*info).si_pid() } == 0 {
        ORPHANED.store(true, Ordering::SeqCst);
    }
}

/// The init learns of its parent's death by SIGUSR1 rather than dying at
/// once, so that it can kill the tree and remove its mount points from the
/// image first; the kernel then tears the namespaces down.
fn watch_for_orphaning() {
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_orphaned as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO; // no SA_RESTART: waitpid must return
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1);
    }
}

/// Process B, pid 1 of the namespace. Never returns.
fn init(fds: &ChildFds, root_plan: &RootPlan, proc_plan: &ProcessPlan) -> ! {
    let mut points = MountPoints::new(fds.report);
    let prepared = (|| {
        rootfs::setup(root_plan, &mut points)?;
        step("sethostname", sys::sethostname(root_plan.hostname.trim_end()))?;
        if root_plan.netns {
            rootfs::loopback_up()?;
        }
        prepare_process(proc_plan)
    })();
    // The caller removes the mount points once the namespace is gone (no
    // unmount needed then, and unmounts are slow); only an orphaned init,
    // whose caller is dead, removes them itself.
    let exec = match prepared {
        Ok(p) => p,
        Err(e) => fail(fds.report, e),
    };
    if ORPHANED.load(Ordering::SeqCst) {
        points.remove_all();
        unsafe { libc::_exit(1) };
    }
    let c = unsafe { libc::fork() };
    if c < 0 {
        fail(
            fds.report,
            SandboxError::Setup { step: "fork".into(), message: io::Error::last_os_error().to_string() },
        );
    }
    if c == 0 {
        user_process(fds, &exec);
    }
    for fd in [fds.stdin, fds.stdout, fds.stderr] {
        if fd > 2 {
            unsafe { libc::close(fd) };
        }
    }
    let mut main_status = None;
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if r < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {
                    if ORPHANED.load(Ordering::SeqCst) {
                        unsafe { libc::kill(-1, libc::SIGKILL) };
                    }
                    continue;
                }
                _ => break,
            }
        }
        if r == c {
            main_status = Some(status);
            // Like a container: when the main process ends, so does the rest.
            unsafe { libc::kill(-1, libc::SIGKILL) };
        }
    }
    if ORPHANED.load(Ordering::SeqCst) {
        points.remove_all();
    }
    let msg = match main_status {
        Some(s) if libc::WIFEXITED(s) => Message::Exited(libc::WEXITSTATUS(s)),
        Some(s) => Message::Signaled(libc::WTERMSIG(s)),
        None => Message::Signaled(libc::SIGKILL),
    };
    report::send_message(fds.report, &msg);
    unsafe { libc::_exit(0) }
}

/// Everything the user process needs, computed in the init where errors can
/// still be reported cleanly.
struct ExecPlan {
    program: String,
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
    user: ResolvedUser,
    set_groups: bool,
    rlimits: Vec<Rlimit>,
}

fn prepare_process(plan: &ProcessPlan) -> Result<ExecPlan, SandboxError> {
    let user_spec = plan.user.as_deref().unwrap_or("0");
    let user = resolve_user(Path::new("/"), user_spec)?;
    if user.uid != 0 || user.gid != 0 {
        let unmapped = match (&plan.single_mapping, plan.mapped_ids) {
            (Some(reason), _) => Some(reason.clone()),
            (None, Some((uc, gc))) if user.uid >= uc || user.gid >= gc => Some(format!(
                "only ids below {uc} (uid) and {gc} (gid) are mapped from /etc/subuid and /etc/subgid"
            )),
            _ => None,
        };
        if let Some(reason) = unmapped {
            return Err(SandboxError::UserNotMapped {
                user: user_spec.to_string(),
                uid: user.uid,
                gid: user.gid,
                reason,
            });
        }
    }
    let mut env: Vec<String> = plan.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(DEFAULT_PATH.to_string());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    make_cwd(&plan.cwd, &user)?;

    let program = plan.argv[0].clone();
    let candidates = if program.contains('/') {
        vec![program.clone()]
    } else {
        let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("");
        path.split(':')
            .map(|d| if d.is_empty() { "." } else { d })
            .map(|d| format!("{}/{program}", d.trim_end_matches('/')))
            .collect()
    };
    let cs = |v: &[String]| v.iter().map(|s| sys::cstr(s)).collect::<io::Result<Vec<_>>>();
    Ok(ExecPlan {
        program,
        candidates: step("argv", cs(&candidates))?,
        argv: step("argv", cs(&plan.argv))?,
        env: step("env", cs(&env))?,
        cwd: step("cwd", sys::cstr(&plan.cwd))?,
        set_groups: plan.single_mapping.is_none(),
        user,
        rlimits: plan.rlimits.clone(),
    })
}

/// Creates the working directory's missing components, owned by the user.
fn make_cwd(cwd: &str, user: &ResolvedUser) -> Result<(), SandboxError> {
    let mut path = PathBuf::from("/");
    for comp in Path::new(cwd).components().skip(1) {
        path.push(comp);
        if std::fs::metadata(&path).is_ok() {
            continue;
        }
        step(&format!("create working directory {}", path.display()), std::fs::create_dir(&path))?;
        step(
            "chown working directory",
            sys::chown(&sys::cpath(&path).unwrap_or_default(), user.uid, user.gid),
        )?;
    }
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
        return Err(SandboxError::Setup {
            step: "working directory".into(),
            message: format!("{cwd} is not a directory in the image"),
        });
    }
    Ok(())
}

/// Process C: becomes the user's process. Never returns.
fn user_process(fds: &ChildFds, plan: &ExecPlan) -> ! {
    let r = (|| -> Result<(), SandboxError> {
        unsafe {
            libc::setsid();
            // The caller may ignore SIGPIPE (Rust does) or block signals;
            // ignored dispositions would survive exec.
            for sig in 1..32 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::umask(0o022);
        }
        for (fd, target) in [(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)] {
            if fd >= 0 {
                step("set up stdio", sys::dup2(fd, target))?;
            }
        }
        sys::cloexec_from(3);
        for l in &plan.rlimits {
            let lim = libc::rlimit { rlim_cur: l.soft, rlim_max: l.hard };
            if unsafe { libc::setrlimit(l.resource.raw(), &lim) } != 0 {
                return step(&format!("setrlimit {:?}", l.resource), Err(io::Error::last_os_error()));
            }
        }
        step("drop capabilities from the bounding set", capability::restrict_bounding_set())?;
        let u = &plan.user;
        if plan.set_groups {
            let groups: Vec<libc::gid_t> = u.additional_gids.clone();
            if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
                return step("setgroups", Err(io::Error::last_os_error()));
            }
        }
        if unsafe { libc::setresgid(u.gid, u.gid, u.gid) } != 0 {
            return step(&format!("setgid {}", u.gid), Err(io::Error::last_os_error()));
        }
        if unsafe { libc::setresuid(u.uid, u.uid, u.uid) } != 0 {
            return step(&format!("setuid {}", u.uid), Err(io::Error::last_os_error()));
        }
        step("set capabilities", capability::restrict_process_sets())?;
        step("no_new_privs", sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1))?;
        step("chdir to working directory", sys::chdir(&plan.cwd))?;
        Ok(())
    })();
    if let Err(e) = r {
        fail(fds.report, e);
    }
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut first_err: Option<i32> = None;
    for cand in &plan.candidates {
        unsafe { libc::execve(cand.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        match errno {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => {
                first_err.get_or_insert(errno);
            }
            _ => {
                first_err = Some(errno);
                break;
            }
        }
    }
    let reason = match first_err {
        None | Some(libc::ENOENT) => "no such file or directory".to_string(),
        Some(libc::EACCES) => "permission denied".to_string(),
        Some(libc::ENOEXEC) => "exec format error".to_string(),
        Some(e) => io::Error::from_raw_os_error(e).to_string().to_lowercase(),
    };
    fail(fds.report, SandboxError::Exec { program: plan.program.clone(), reason })
}
