//! The sandbox's side of a run: the three processes below the caller.
//!
//! ```text
//! hoist (caller) ── fork ──▶ A: joins the run's cgroups, unshares the
//!                              namespaces, forks B, forwards B's end
//!                            B: pid 1 of the new pid namespace: builds the
//!                              root (and a pty, whose master goes back to
//!                              the caller), then either
//!                              - (init) forks C, reaps everything, passes
//!                                signals on to C, kills the rest when C
//!                                ends, reports C's status; or
//!                              - (no init) becomes the process itself, as
//!                                pid 1; A reports its status
//!                            C: pid 2: drops to the user, capabilities and
//!                              limits, execs the command
//! ```
//!
//! - A dies with the caller (parent-death signal); B is told when A dies, kills
//!   the tree, removes its mount points from the image and exits. A B that
//!   becomes the process asks to be killed with A right before its exec.
//! - When B dies the kernel kills every process of the pid namespace; every
//!   mount lives in the private mount namespace and goes with it.
//! - All three run in a fork of a possibly multi-threaded caller, so they take
//!   no lock another thread could hold (no stdio, no `std::env`); glibc keeps
//!   malloc usable after fork. Each owns its copy of the descriptors it uses.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::capability;
use super::error::SandboxError;
use super::report::{self, Message};
use super::rootfs::{self, MountPoints, RootPlan, step};
use super::spec::Rlimit;
use super::sys::{self, Ended, Errno, Forked, ForkedChild, Pid, PollFd, PollFlags, Signal, UnshareFlags};
use super::syscall::LinuxSyscall;
use super::user::{ResolvedUser, resolve_groups, resolve_user};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The descriptors the children use, owned by each child's copy.
pub(crate) struct ChildFds {
    pub report: OwnedFd,
    /// Rootless: the user namespace to join.
    pub userns: Option<OwnedFd>,
    /// Standard input, output and error; `None` keeps what is inherited.
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// With a terminal: where B sends the pty's master.
    pub console: Option<OwnedFd>,
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
    pub mapped_ids: Option<(u64, u64)>,
    /// The capabilities the process keeps, as a mask.
    pub capabilities: u64,
    /// `--group-add`: group names or ids.
    pub group_add: Vec<String>,
    /// Whether B stays hoist's init (the process is then C, pid 2).
    pub init: bool,
    /// A terminal for the process, with this window size if known.
    pub tty: Option<Option<sys::WindowSize>>,
    /// Whether the caller forwards signals, which B then passes on to C.
    pub forward_signals: bool,
    /// The `cgroup.procs` files A joins first.
    pub cgroup_procs: Vec<PathBuf>,
}

fn fail(report: BorrowedFd<'_>, e: SandboxError) -> ! {
    report::send_message(report, &Message::Error(e));
    sys::exit_now(1)
}

/// Process A. Never returns.
pub(crate) fn namespace_parent(
    child: ForkedChild,
    parent_pid: Pid,
    netns: bool,
    rootless: bool,
    mut fds: ChildFds,
    root_plan: &RootPlan,
    proc_plan: &ProcessPlan,
) -> ! {
    sys::die_with_parent(parent_pid);
    // Other threads of the caller may have descriptors open (other sandboxes'
    // pipes): holding them would keep those pipes from reaching EOF.
    let raw = |f: &Option<OwnedFd>| f.as_ref().map(AsRawFd::as_raw_fd);
    let mut keep: Vec<RawFd> = [Some(0), Some(1), Some(2), Some(fds.report.as_raw_fd())]
        .into_iter()
        .chain([raw(&fds.userns), raw(&fds.stdin), raw(&fds.stdout), raw(&fds.stderr), raw(&fds.console)])
        .flatten()
        .collect();
    keep.sort_unstable();
    keep.dedup();
    child.close_all_except(&keep);
    let report = fds.report.as_fd();
    // Before anything else, so that every process of the sandbox is in them.
    for procs in &proc_plan.cgroup_procs {
        if let Err(e) = sys::write_control_file(procs, "0") {
            let step = format!("join the cgroup {}", procs.display());
            fail(report, SandboxError::Setup { step, message: e.to_string() });
        }
    }

    let mut flags = UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC | UnshareFlags::NEWPID;
    if netns {
        flags |= UnshareFlags::NEWNET;
    }
    if let Some(userns) = fds.userns.take() {
        if let Err(e) = sys::join_user_namespace(&userns) {
            let step = "join the user namespace".into();
            fail(report, SandboxError::Setup { step, message: e.to_string() });
        }
        drop(userns);
    }
    if let Err(e) = sys::unshare(flags) {
        let hint = if rootless {
            " (unprivileged user namespaces may be disabled: see /proc/sys/user/max_user_namespaces, \
             kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns)"
        } else {
            ""
        };
        fail(
            report,
            SandboxError::Setup { step: "unshare namespaces".into(), message: format!("{e}{hint}") },
        );
    }

    // B cannot use getppid() to see whether A died before B asked to be told
    // (it is 0 in a new pid namespace); a pipe only A holds open can.
    let (life_r, life_w) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => fail(report, SandboxError::Setup { step: "pipe".into(), message: e.to_string() }),
    };
    // SAFETY: B runs `init`, which leaves only through `exit_now` and takes
    // no lock (see the module documentation).
    let b = match unsafe { sys::fork() } {
        Err(e) => fail(report, SandboxError::Setup { step: "fork init".into(), message: e.to_string() }),
        Ok(Forked::Child(b)) => {
            let _ = sys::notify_on_parent_death();
            drop(life_w);
            let mut life = [PollFd::new(&life_r, PollFlags::IN)];
            if sys::poll(&mut life, Some(Duration::ZERO)).map_or(true, |n| n != 0) {
                sys::exit_now(1);
            }
            // Kept: it tells A's death from a forwarded SIGUSR1, and is the
            // last check before a B that becomes the process execs.
            sys::watch_parent_pipe(life_r);
            init(b, fds, root_plan, proc_plan);
        }
        Ok(Forked::Parent(b)) => b,
    };
    drop(life_r);
    // life_w stays open until A exits.
    std::mem::forget(life_w);
    report::send_message(report, &Message::InitPid(b.as_raw_pid()));
    let ChildFds { report, userns, stdin, stdout, stderr, console } = fds;
    drop((userns, stdin, stdout, stderr, console));
    match sys::wait_for(b) {
        Ok(ended) => {
            if !proc_plan.init {
                // B was the process: its end is the process's status.
                let message = match ended {
                    Ended::Exited(code) => Message::Exited(code),
                    Ended::Signaled(signal) => Message::Signaled(signal),
                };
                report::send_message(report.as_fd(), &message);
            }
            sys::exit_now(ended.code())
        }
        Err(_) => sys::exit_now(1),
    }
}

/// Process B, pid 1 of the namespace. Never returns.
///
/// It learns of its parent's death by SIGUSR1 rather than dying at once
/// ([`sys::notify_on_parent_death`]), so that it can kill the tree and
/// remove its mount points from the image first; the kernel then tears the
/// namespaces down.
fn init(_: ForkedChild, fds: ChildFds, root_plan: &RootPlan, proc_plan: &ProcessPlan) -> ! {
    let report = fds.report.as_fd();
    let mut points = MountPoints::new(report);
    let prepared = (|| {
        rootfs::setup(root_plan, &mut points)?;
        step("sethostname", sys::sethostname(root_plan.hostname.trim_end()))?;
        if root_plan.netns {
            step("bring up lo", sys::loopback_up())?;
        }
        let exec = prepare_process(proc_plan)?;
        rootfs::finish(root_plan, &mut points)?;
        let terminal = match (proc_plan.tty, &fds.console) {
            (Some(size), Some(console)) => Some(open_terminal(size, console.as_fd())?),
            _ => None,
        };
        Ok((exec, terminal))
    })();
    // The caller removes the mount points once the namespace is gone (no
    // unmount needed then, and unmounts are slow); only an orphaned init,
    // whose caller is dead, removes them itself.
    let (exec, terminal) = match prepared {
        Ok(p) => p,
        Err(e) => fail(report, e),
    };
    if sys::parent_gone() {
        points.remove_all(&LinuxSyscall);
        sys::exit_now(1);
    }
    if !proc_plan.init {
        user_process(&fds, &exec, terminal.as_ref(), true);
    }
    // SAFETY: C runs `user_process`, which leaves only through exec or
    // `exit_now` and takes no lock.
    let c = match unsafe { sys::fork() } {
        Err(e) => fail(report, SandboxError::Setup { step: "fork".into(), message: e.to_string() }),
        Ok(Forked::Child(_)) => user_process(&fds, &exec, terminal.as_ref(), false),
        Ok(Forked::Parent(c)) => c,
    };
    drop(terminal);
    if proc_plan.forward_signals
        && let Err(e) = sys::forward_signals_to(c)
    {
        sys::kill_every_process();
        fail(report, SandboxError::Setup { step: "forward signals".into(), message: e.to_string() });
    }
    drop((fds.stdin, fds.stdout, fds.stderr, fds.console));
    let mut main_status = None;
    loop {
        match sys::wait_any() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if sys::parent_died() {
                    sys::kill_every_process();
                }
            }
            Err(_) => break,
            Ok((pid, ended)) if pid == c => {
                main_status = Some(ended);
                // Like a container: when the main process ends, so does the rest.
                sys::kill_every_process();
            }
            Ok(_) => {}
        }
    }
    if sys::parent_died() {
        points.remove_all(&LinuxSyscall);
    }
    let msg = match main_status {
        Some(Ended::Exited(code)) => Message::Exited(code),
        Some(Ended::Signaled(signal)) => Message::Signaled(signal),
        None => Message::Signaled(Signal::KILL.as_raw()),
    };
    report::send_message(report, &msg);
    sys::exit_now(0)
}

/// A pty in the sandbox's own devpts, sized as the caller's terminal is; its
/// master goes to the caller over `console`, its slave is returned for the
/// process.
fn open_terminal(size: Option<sys::WindowSize>, console: BorrowedFd<'_>) -> Result<OwnedFd, SandboxError> {
    let (master, slave) = step("open a pty", sys::open_pty())?;
    if let Some(size) = size {
        step("set the pty's window size", sys::set_window_size(&master, size))?;
    }
    step("send the pty to hoist", sys::send_fd(console, master.as_fd()))?;
    Ok(slave)
}

/// Everything the user process needs, computed in the init where errors can
/// still be reported cleanly.
struct ExecPlan {
    program: String,
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: PathBuf,
    user: ResolvedUser,
    set_groups: bool,
    rlimits: Vec<Rlimit>,
    capabilities: u64,
}

fn prepare_process(plan: &ProcessPlan) -> Result<ExecPlan, SandboxError> {
    let user_spec = plan.user.as_deref().unwrap_or("0");
    let mut user = resolve_user(Path::new("/"), user_spec)?;
    for gid in resolve_groups(Path::new("/"), &plan.group_add)? {
        if !user.additional_gids.contains(&gid) {
            user.additional_gids.push(gid);
        }
    }
    if user.uid != 0 || user.gid != 0 {
        let unmapped = match (&plan.single_mapping, plan.mapped_ids) {
            (Some(reason), _) => Some(reason.clone()),
            (None, Some((uc, gc))) if u64::from(user.uid) >= uc || u64::from(user.gid) >= gc => {
                Some(format!(
                    "only ids below {uc} (uid) and {gc} (gid) are mapped from /etc/subuid and /etc/subgid"
                ))
            }
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
        cwd: PathBuf::from(&plan.cwd),
        set_groups: plan.single_mapping.is_none(),
        user,
        rlimits: plan.rlimits.clone(),
        capabilities: plan.capabilities,
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
        step("chown working directory", sys::chown(&path, user.uid, user.gid))?;
    }
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
        return Err(SandboxError::Setup {
            step: "working directory".into(),
            message: format!("{cwd} is not a directory in the image"),
        });
    }
    Ok(())
}

/// Process C (or B itself as pid 1, `as_pid1`): becomes the user's process.
/// Never returns.
fn user_process(fds: &ChildFds, plan: &ExecPlan, terminal: Option<&OwnedFd>, as_pid1: bool) -> ! {
    let report = fds.report.as_fd();
    let r = (|| -> Result<(), SandboxError> {
        let _ = sys::setsid();
        sys::reset_signals();
        sys::set_umask(0o022);
        match terminal {
            Some(slave) => {
                step("make the pty the controlling terminal", sys::set_controlling_terminal(slave))?;
                // The user may reopen its terminal by name, as with runc.
                step("give the pty to the user", sys::fchown(slave, plan.user.uid, plan.user.gid))?;
                for target in 0..3 {
                    step("set up stdio", sys::dup_to_stdio(slave.as_fd(), target))?;
                }
            }
            None => {
                for (fd, target) in [(&fds.stdin, 0), (&fds.stdout, 1), (&fds.stderr, 2)] {
                    if let Some(fd) = fd {
                        step("set up stdio", sys::dup_to_stdio(fd.as_fd(), target))?;
                    }
                }
            }
        }
        sys::cloexec_from(3);
        for l in &plan.rlimits {
            step(
                &format!("setrlimit {:?}", l.resource),
                sys::set_rlimit(l.resource.resource(), l.soft, l.hard),
            )?;
        }
        step(
            "drop capabilities from the bounding set",
            capability::restrict_bounding_set(plan.capabilities),
        )?;
        let u = &plan.user;
        if plan.set_groups {
            step("setgroups", sys::set_groups(&u.additional_gids))?;
        }
        step(&format!("setgid {}", u.gid), sys::set_gid(u.gid))?;
        step(&format!("setuid {}", u.uid), sys::set_uid(u.uid))?;
        step("set capabilities", capability::restrict_process_sets(plan.capabilities))?;
        step("no_new_privs", sys::set_no_new_privs())?;
        step("chdir to working directory", sys::chdir(&plan.cwd))?;
        if as_pid1 {
            step("die with hoist", sys::die_with_parent_now())?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        fail(report, e);
    }
    let mut first_err: Option<Errno> = None;
    for candidate in &plan.candidates {
        let errno =
            Errno::from_io_error(&sys::execve(candidate, &plan.argv, &plan.env)).unwrap_or(Errno::NOENT);
        match errno {
            Errno::NOENT | Errno::NOTDIR => {}
            Errno::ACCESS => {
                first_err.get_or_insert(errno);
            }
            _ => {
                first_err = Some(errno);
                break;
            }
        }
    }
    let reason = match first_err {
        None | Some(Errno::NOENT) => "no such file or directory".to_string(),
        Some(Errno::ACCESS) => "permission denied".to_string(),
        Some(Errno::NOEXEC) => "exec format error".to_string(),
        Some(e) => io::Error::from(e).to_string().to_lowercase(),
    };
    fail(report, SandboxError::Exec { program: plan.program.clone(), reason })
}
