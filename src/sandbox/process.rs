//! The caller's side of a run, from spec to [`Outcome`].
//!
//! - Validate and prepare the spec, fork the tree (see `init`), write the id
//!   maps of a rootless namespace.
//! - Make the run's cgroups (see `cgroup`) before the fork, remove them after.
//! - Poll a pidfd of the first child with the output, stdin and report pipes
//!   (and, with a terminal, the pty's master and the caller's stdin; when
//!   forwarding, the caller's caught signals) until everything has ended; a
//!   timeout or cancellation is a SIGKILL to the namespace's init.
//! - Forwarding: SIGTERM becomes the stop signal; after SIGTERM or SIGINT the
//!   process has the stop timeout to end, a second one kills it at once.
//! - Afterwards, remove the mount points the init had to create in the image.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::cgroup::Cgroups;
use super::error::SandboxError;
use super::init::{ChildFds, ProcessPlan, namespace_parent};
use super::report::{Decoder, Message};
use super::rootfs::RootPlan;
use super::spec::{
    ExitStatus, MountKind, Network, Outcome, Output, RootFs, SandboxSpec, StartHook, Stdin, Stream,
};
use super::sys::{self, Forked, Pid, PollFd, PollFlags, Signal};
use super::unshared;
use super::userns;
use crate::idmap::IdMap;
use crate::paths;

/// Host directories the init may cover with its staging tmpfs (inside its
/// own mount namespace only); the first one not holding any path the
/// sandbox uses is taken.
const STAGING_CANDIDATES: &[&str] =
    &["/mnt", "/srv", "/media", "/opt", "/boot", "/run", "/home", "/var", "/tmp"];

fn canonical(p: &Path, what: &str) -> Result<PathBuf, SandboxError> {
    std::fs::canonicalize(p).map_err(|e| SandboxError::host(format!("{what} {}", p.display()), e))
}

fn choose_staging(used: &[PathBuf]) -> Result<PathBuf, SandboxError> {
    STAGING_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|cand| {
            std::fs::symlink_metadata(cand).is_ok_and(|m| m.is_dir()) && !used.iter().any(|u| u.starts_with(cand))
        })
        .ok_or_else(|| {
            SandboxError::InvalidSpec(format!(
                "no host directory among {STAGING_CANDIDATES:?} is free of the sandbox's paths to stage the root on"
            ))
        })
}

fn default_hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.0.1\t{hostname}\n"
    )
}

fn validate(spec: &SandboxSpec) -> Result<(), SandboxError> {
    let bad = |m: String| Err(SandboxError::InvalidSpec(m));
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return bad("empty command".into());
    }
    if !spec.cwd.starts_with('/') {
        return bad(format!("working directory {:?} is not absolute", spec.cwd));
    }
    if spec.hostname.is_empty() || spec.hostname.len() > 64 {
        return bad(format!("hostname {:?} must have 1 to 64 bytes", spec.hostname));
    }
    let targets =
        spec.mounts.iter().map(|m| &m.target).chain(spec.container_mounts.iter().map(|m| &m.target));
    for target in targets {
        if !target.starts_with('/') || paths::descending(target.as_bytes()).is_none() {
            return bad(format!("mount target {target:?} must be absolute without .."));
        }
    }
    if let RootFs::Overlay { lower, .. } = &spec.root
        && lower.is_empty()
    {
        return bad("overlay root without lower layers".into());
    }
    let strings = spec.argv.iter().chain(&spec.env).chain([&spec.cwd, &spec.hostname]);
    if strings.into_iter().any(|s| s.contains('\0')) {
        return bad("NUL byte in argv, env, cwd or hostname".into());
    }
    Ok(())
}

/// Runs the spec's process in a fresh sandbox and waits for it (see the
/// module documentation).
pub fn run(spec: SandboxSpec) -> Result<Outcome, SandboxError> {
    let started = Instant::now();
    validate(&spec)?;
    let rootless = crate::idmap::rootless();
    let maps = rootless.then(IdMap::rootless);
    let netns = spec.network == Network::None;

    let (root, host_root_paths) = match &spec.root {
        RootFs::Dir(d) => {
            let d = canonical(d, "root")?;
            (RootFs::Dir(d.clone()), vec![d])
        }
        RootFs::Overlay { lower, upper, work } => {
            let lower = lower.iter().map(|l| canonical(l, "lower layer")).collect::<Result<Vec<_>, _>>()?;
            let upper = canonical(upper, "upper dir")?;
            let work = canonical(work, "work dir")?;
            let mut all = lower.clone();
            all.extend([upper.clone(), work.clone()]);
            (RootFs::Overlay { lower, upper, work }, all)
        }
    };
    let mut mounts = spec.mounts.clone();
    for m in &mut mounts {
        m.source = canonical(&m.source, "mount source")?;
    }
    let mut container_mounts = spec.container_mounts.clone();
    for m in &mut container_mounts {
        match &mut m.kind {
            MountKind::Bind { source } | MountKind::Volume { source, .. } => {
                *source = canonical(source, "mount source")?;
            }
            MountKind::Overlay { lower, upper, work } => {
                for layer in lower.iter_mut() {
                    *layer = canonical(layer, "mount layer")?;
                }
                *upper = canonical(upper, "mount upper dir")?;
                *work = canonical(work, "mount work dir")?;
            }
            MountKind::File { .. } | MountKind::Tmpfs { .. } => {}
        }
    }
    let mut used = host_root_paths.clone();
    used.extend(mounts.iter().map(|m| m.source.clone()));
    used.extend(container_mounts.iter().flat_map(|m| match &m.kind {
        MountKind::Bind { source } | MountKind::Volume { source, .. } => vec![source.clone()],
        MountKind::Overlay { lower, upper, work } => lower.iter().chain([upper, work]).cloned().collect(),
        MountKind::File { .. } | MountKind::Tmpfs { .. } => Vec::new(),
    }));
    let staging = choose_staging(&used)?;
    let resolv_conf = match (&spec.resolv_conf, spec.network) {
        (Some(r), _) => r.clone(),
        (None, Network::Host) => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        (None, Network::None) => "# hoist: no network\n".to_string(),
    };
    let root_plan = RootPlan {
        root: root.clone(),
        staging,
        mounts,
        container_mounts,
        readonly_root: spec.readonly_root,
        hosts: spec.hosts.clone().unwrap_or_else(|| default_hosts(&spec.hostname)),
        resolv_conf,
        hostname: format!("{}\n", spec.hostname),
        userns: rootless,
        netns,
    };
    let cgroups = Cgroups::create(&spec.limits)
        .map_err(|e| SandboxError::Cgroup { limit: e.limit.to_string(), reason: e.reason })?;
    // The caller's terminal, which a pty follows in size (and, as input, in raw mode).
    let caller_stdin = rustix::stdio::stdin();
    let caller_stdout = rustix::stdio::stdout();
    let caller_terminal =
        [caller_stdout, caller_stdin].into_iter().find(|fd| spec.tty && sys::is_terminal(fd));
    let proc_plan = ProcessPlan {
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        user: spec.user.clone(),
        rlimits: spec.rlimits.clone(),
        single_mapping: maps.as_ref().and_then(userns::single_mapping_reason),
        mapped_ids: maps.as_ref().filter(|m| !m.maps_only_root()).map(IdMap::container_ends),
        capabilities: spec.capabilities,
        group_add: spec.group_add.clone(),
        init: spec.init,
        tty: spec.tty.then(|| caller_terminal.and_then(sys::window_size)),
        forward_signals: spec.forward_signals.is_some(),
        cgroup_procs: cgroups.as_ref().map(|c| c.procs().to_vec()).unwrap_or_default(),
    };

    // Descriptors: the child ends are closed in the parent right after fork.
    let host = SandboxError::host;
    let devnull = || std::fs::File::options().read(true).write(true).open("/dev/null").map(OwnedFd::from);
    // With a terminal the process's stdio is the pty: what it reads is
    // written to the master here, what it writes is read from it.
    let mut tty_input: Vec<u8> = Vec::new();
    let mut copy_caller_stdin = false;
    let (stdin_child, mut stdin_writer, stdin_bytes) = match (&spec.stdin, spec.tty) {
        (Stdin::Null, false) => (Some(devnull().map_err(|e| host("open /dev/null", e))?), None, Vec::new()),
        (Stdin::Inherit, false) => (None, None, Vec::new()),
        (Stdin::Bytes(b), false) => {
            let (r, w) = sys::pipe().map_err(|e| host("stdin pipe", e))?;
            (Some(r), Some(w), b.clone())
        }
        (Stdin::Null, true) => (None, None, Vec::new()),
        (Stdin::Inherit, true) => {
            copy_caller_stdin = true;
            (None, None, Vec::new())
        }
        (Stdin::Bytes(b), true) => {
            tty_input = b.clone();
            (None, None, Vec::new())
        }
    };
    let mut output = spec.output;
    let (out_child, err_child, mut out_reader, mut err_reader) = match (&output, spec.tty) {
        (_, true) | (Output::Inherit, false) => (None, None, None, None),
        (Output::Null, false) => {
            let n = devnull().map_err(|e| host("open /dev/null", e))?;
            let n2 = n.try_clone().map_err(|e| host("dup", e))?;
            (Some(n), Some(n2), None, None)
        }
        (Output::Capture(_), false) => {
            let (or, ow) = sys::pipe().map_err(|e| host("stdout pipe", e))?;
            let (er, ew) = sys::pipe().map_err(|e| host("stderr pipe", e))?;
            (Some(ow), Some(ew), Some(or), Some(er))
        }
    };
    let (mut console, console_child) = if spec.tty {
        let (parent, child) = sys::socketpair().map_err(|e| host("console socket", e))?;
        (Some(parent), Some(child))
    } else {
        (None, None)
    };
    let mut signals = match &spec.forward_signals {
        Some(_) => Some(sys::catch_signals(sys::FORWARDED_SIGNALS).map_err(|e| host("catch signals", e))?),
        None => None,
    };
    let (report_r, report_w) = sys::pipe().map_err(|e| host("report pipe", e))?;
    // Rootless, the sandbox joins the process's user namespace (made once,
    // with the subordinate ids mapped) and makes the others inside it.
    let userns =
        if rootless { Some(unshared::namespace().map_err(|e| host("user namespace", e))?) } else { None };
    let fds = ChildFds {
        report: report_w,
        userns,
        stdin: stdin_child,
        stdout: out_child,
        stderr: err_child,
        console: console_child,
    };
    let parent_pid = sys::getpid();

    // SAFETY: A runs `namespace_parent`, which leaves only through
    // `exit_now` and takes no lock (see the `init` module).
    let pid = match unsafe { sys::fork() } {
        Err(e) => return Err(host("fork", e)),
        Ok(Forked::Child(child)) => {
            namespace_parent(child, parent_pid, netns, rootless, fds, &root_plan, &proc_plan)
        }
        Ok(Forked::Parent(pid)) => pid,
    };
    // The children's ends close here, so that only the children hold them.
    drop(fds);

    let mut sup = Supervisor::new(pid);
    sup.on_start = spec.on_start;

    // Supervise: output, report, stdin and A's exit, until all have ended.
    let pidfd = sys::pidfd_open(pid).map_err(|e| host("pidfd_open", e));
    let deadline = spec.timeout.map(|t| started + t);
    let mut decoder = Decoder::default();
    let mut report_r = Some(report_r);
    let mut stdin_pos = 0;
    let mut a_exited = pidfd.is_err();
    let (mut timed_out, mut cancelled) = (false, false);
    let mut buf = vec![0u8; 64 * 1024];
    let mut master: Option<OwnedFd> = None;
    let mut raw_terminal: Option<RawTerminal> = None;
    let mut stop_deadline: Option<Instant> = None;
    if let Some(w) = &stdin_writer {
        let _ = sys::set_nonblocking(w);
        if stdin_bytes.is_empty() {
            stdin_writer = None;
        }
    }
    loop {
        if a_exited
            && out_reader.is_none()
            && err_reader.is_none()
            && report_r.is_none()
            && console.is_none()
            && master.is_none()
        {
            break;
        }
        if !timed_out && !cancelled {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
            } else if spec.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst)) {
                cancelled = true;
            }
            if timed_out || cancelled {
                sup.kill_all();
            }
        }
        if stop_deadline.is_some_and(|d| Instant::now() >= d) {
            stop_deadline = None;
            sup.kill_all();
        }
        let mut wait: Option<Duration> = None;
        let mut wait_until = |until: Instant| {
            let left = until.saturating_duration_since(Instant::now());
            let left = Duration::from_millis(left.as_millis().min(i32::MAX as u128) as u64 + 1);
            wait = Some(wait.map_or(left, |w: Duration| w.min(left)));
        };
        if !timed_out && !cancelled {
            if let Some(d) = deadline {
                wait_until(d);
            }
            if spec.cancel.is_some() {
                wait_until(Instant::now() + Duration::from_millis(20));
            }
        }
        if let Some(d) = stop_deadline {
            wait_until(d);
        }
        let master_events = if tty_input.is_empty() { PollFlags::IN } else { PollFlags::IN | PollFlags::OUT };
        let watched: [(Option<BorrowedFd<'_>>, PollFlags); 9] = [
            (borrow(&out_reader), PollFlags::IN),
            (borrow(&err_reader), PollFlags::IN),
            (borrow(&report_r), PollFlags::IN),
            (borrow(&stdin_writer), PollFlags::OUT),
            (if a_exited { None } else { pidfd.as_ref().ok().map(OwnedFd::as_fd) }, PollFlags::IN),
            (borrow(&console), PollFlags::IN),
            (borrow(&master), master_events),
            (if copy_caller_stdin && master.is_some() { Some(caller_stdin) } else { None }, PollFlags::IN),
            (signals.as_ref().map(|(_, r)| r.as_fd()), PollFlags::IN),
        ];
        let mut polls: Vec<PollFd<'_>> = Vec::with_capacity(watched.len());
        let mut slots = [None; 9];
        for (slot, (fd, events)) in slots.iter_mut().zip(watched) {
            if let Some(fd) = fd {
                *slot = Some(polls.len());
                polls.push(PollFd::from_borrowed_fd(fd, events));
            }
        }
        if let Err(e) = sys::poll(&mut polls, wait) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            sup.kill_all();
            sup.reap();
            return Err(host("poll", e));
        }
        let ready = slots.map(|slot| slot.and_then(|i| Some(polls[i].revents()).filter(|r| !r.is_empty())));
        drop(polls);
        for (i, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if ready[i].is_none() {
                continue;
            }
            let reader = if i == 0 { &mut out_reader } else { &mut err_reader };
            match reader.as_ref().map_or(Ok(0), |r| sys::read(r, &mut buf)) {
                Ok(0) | Err(_) => *reader = None,
                Ok(k) => {
                    if let Output::Capture(sink) = &mut output {
                        sink(stream, &buf[..k]);
                    }
                }
            }
        }
        if ready[2].is_some() {
            match report_r.as_ref().map_or(Ok(0), |r| sys::read(r, &mut buf)) {
                Ok(0) | Err(_) => report_r = None,
                Ok(k) => {
                    for m in decoder.feed(&buf[..k]) {
                        sup.take(m);
                    }
                }
            }
        }
        if ready[3].is_some() {
            match stdin_writer.as_ref().map_or(Ok(0), |w| sys::write(w, &stdin_bytes[stdin_pos..])) {
                Ok(k) => {
                    stdin_pos += k;
                    if stdin_pos >= stdin_bytes.len() {
                        stdin_writer = None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => stdin_writer = None,
            }
        }
        if ready[4].is_some() {
            a_exited = true;
            stdin_writer = None;
        }
        if ready[5].is_some() {
            // The pty's master, once; end of stream when the sandbox failed first.
            if let Ok(Some(fd)) = console.as_ref().map_or(Ok(None), sys::recv_fd) {
                let _ = sys::set_nonblocking(&fd);
                if copy_caller_stdin && sys::is_terminal(caller_stdin) {
                    raw_terminal = sys::make_raw(caller_stdin).ok().map(|saved| RawTerminal { saved });
                }
                master = Some(fd);
            }
            console = None;
        }
        if let Some(events) = ready[6] {
            if events.contains(PollFlags::OUT) && !tty_input.is_empty() {
                match master.as_ref().map_or(Ok(0), |m| sys::write(m, &tty_input)) {
                    Ok(k) => {
                        tty_input.drain(..k);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => tty_input.clear(),
                }
            }
            if !(events & (PollFlags::IN | PollFlags::HUP | PollFlags::ERR)).is_empty() {
                match master.as_ref().map_or(Ok(0), |m| sys::read(m, &mut buf)) {
                    Ok(0) => master = None,
                    Ok(k) => match &mut output {
                        Output::Capture(sink) => sink(Stream::Stdout, &buf[..k]),
                        Output::Inherit => {
                            let _ = sys::write_all(caller_stdout, &buf[..k]);
                        }
                        Output::Null => {}
                    },
                    // EIO once every slave descriptor is closed.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => master = None,
                }
            }
        }
        if ready[7].is_some() {
            match sys::read(caller_stdin, &mut buf) {
                Ok(0) | Err(_) => copy_caller_stdin = false,
                Ok(k) => tty_input.extend_from_slice(&buf[..k]),
            }
        }
        if ready[8].is_some() {
            let mut caught = [0u8; 64];
            let n = signals.as_ref().map_or(Ok(0), |(_, r)| sys::read(r, &mut caught)).unwrap_or(0);
            for &signal in &caught[..n] {
                let signal = i32::from(signal);
                if signal == libc_sig(Signal::WINCH) && spec.tty {
                    if let (Some(m), Some(size)) = (&master, caller_terminal.and_then(sys::window_size)) {
                        let _ = sys::set_window_size(m, size);
                    }
                    continue;
                }
                let stopping = signal == libc_sig(Signal::TERM) || signal == libc_sig(Signal::INT);
                if stopping && stop_deadline.is_some() {
                    // A second one: kill at once.
                    sup.kill_all();
                    continue;
                }
                let forwarding = spec.forward_signals.expect("signals are caught only to forward them");
                let sent = if signal == libc_sig(Signal::TERM) { forwarding.stop_signal } else { signal };
                if stopping {
                    stop_deadline = Some(Instant::now() + forwarding.stop_timeout);
                }
                if !sup.signal(sent) && stopping {
                    sup.kill_all();
                }
            }
        }
    }
    drop(raw_terminal);
    drop(signals.take());
    let a_status = sup.reap();
    drop(cgroups);
    sup.clean_mount_points(&root);
    if let RootFs::Overlay { work, .. } = &root {
        super::release_work_dir(work);
    }
    if let Some(e) = sup.error {
        return Err(e);
    }
    let status = if timed_out || cancelled {
        ExitStatus::Signaled(Signal::KILL.as_raw())
    } else if let Some(s) = sup.status {
        s
    } else {
        match a_status {
            Some(c) if c >= 128 => ExitStatus::Signaled(c - 128),
            Some(c) => {
                return Err(SandboxError::Setup {
                    step: "sandbox init".into(),
                    message: format!("ended with status {c} without reporting the process status"),
                });
            }
            None => ExitStatus::Signaled(Signal::KILL.as_raw()),
        }
    };
    Ok(Outcome {
        status,
        timed_out,
        cancelled,
        duration: started.elapsed(),
        created_mount_points: sup.mount_points,
    })
}

fn libc_sig(signal: Signal) -> i32 {
    signal.as_raw()
}

/// The caller's terminal in raw mode while a pty is attached; restored on drop.
struct RawTerminal {
    saved: sys::TerminalSettings,
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = sys::restore_terminal(rustix::stdio::stdin(), &self.saved);
    }
}

/// The caller's view of the tree.
struct Supervisor {
    a: Pid,
    a_reaped: bool,
    init: Option<Pid>,
    on_start: Option<StartHook>,
    killed: bool,
    mount_points: Vec<PathBuf>,
    mount_points_removed: bool,
    status: Option<ExitStatus>,
    error: Option<SandboxError>,
}

impl Supervisor {
    fn new(a: Pid) -> Self {
        Supervisor {
            a,
            a_reaped: false,
            init: None,
            on_start: None,
            killed: false,
            mount_points: Vec::new(),
            mount_points_removed: false,
            status: None,
            error: None,
        }
    }

    fn take(&mut self, m: Message) {
        match m {
            Message::InitPid(p) => {
                self.init = (p > 0).then(|| Pid::from_raw(p)).flatten();
                if let Some(init) = self.init.filter(|_| self.killed) {
                    let _ = sys::kill(init, Signal::KILL);
                }
                if let (Some(hook), Some(init)) = (self.on_start.take(), self.init) {
                    (hook.0)(init.as_raw_pid());
                }
            }
            Message::MountPoint(p) => self.mount_points.push(p),
            Message::MountPointsRemoved => self.mount_points_removed = true,
            Message::Exited(c) => self.status = Some(ExitStatus::Exited(c)),
            Message::Signaled(s) => self.status = Some(ExitStatus::Signaled(s)),
            Message::Error(e) => {
                // The first error is the cause; later ones are consequences.
                if self.error.is_none() {
                    self.error = Some(e);
                }
            }
        }
    }

    /// SIGKILL to the pid-namespace init takes the whole namespace with it;
    /// A is still unreaped, so its child's pid cannot have been reused.
    fn kill_all(&mut self) {
        self.killed = true;
        match self.init {
            Some(p) => {
                let _ = sys::kill(p, Signal::KILL);
            }
            None => {
                let _ = sys::kill(self.a, Signal::KILL);
            }
        }
    }

    /// Sends `signal` to the sandbox's pid 1; `false` when it is not known yet.
    fn signal(&self, signal: i32) -> bool {
        // A is unreaped while this runs, so pid 1's pid is not reused.
        match (self.init, Signal::from_named_raw(signal)) {
            (Some(init), Some(signal)) if !self.killed => sys::kill(init, signal).is_ok(),
            _ => false,
        }
    }

    /// Waits for A; returns its exit code (128+signal for a signal).
    fn reap(&mut self) -> Option<i32> {
        if self.a_reaped {
            return None;
        }
        let ended = sys::wait_for(self.a).ok()?;
        self.a_reaped = true;
        Some(ended.code())
    }

    /// Removes the mount points the init created, from the host side once
    /// the namespace (and so every mount on them) is gone: empty files and
    /// dirs only, never through a symlink. In an overlay they are removed
    /// from the upper dir.
    fn clean_mount_points(&self, root: &RootFs) {
        if self.mount_points_removed {
            return;
        }
        let base = match root {
            RootFs::Dir(d) => d,
            RootFs::Overlay { upper, .. } => upper,
        };
        for rel in self.mount_points.iter().rev() {
            let _ = remove_beneath(base, rel);
        }
    }
}

fn borrow(fd: &Option<OwnedFd>) -> Option<BorrowedFd<'_>> {
    fd.as_ref().map(OwnedFd::as_fd)
}

fn remove_beneath(base: &Path, rel: &Path) -> io::Result<()> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().ok_or_else(|| io::Error::other("no name"))?;
    let dir = sys::open_dir_beneath(base, parent)?;
    sys::remove_empty_at(&dir, Path::new(name))
}
