//! The caller's side of a run, from spec to [`Outcome`].
//!
//! - Validate and prepare the spec, fork the tree (see `init`), write the id
//!   maps of a rootless namespace.
//! - Poll a pidfd of the first child with the output, stdin and report pipes
//!   until everything has ended; a timeout or cancellation is a SIGKILL to the
//!   namespace's init.
//! - Afterwards, remove the mount points the init had to create in the image.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::error::SandboxError;
use super::init::{ChildFds, ProcessPlan, namespace_parent};
use super::report::{Decoder, Message};
use super::rootfs::RootPlan;
use super::spec::{ExitStatus, Network, Outcome, Output, RootFs, SandboxSpec, Stdin, Stream};
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
    for m in &spec.mounts {
        if !m.target.starts_with('/') || paths::descending(m.target.as_bytes()).is_none() {
            return bad(format!("mount target {:?} must be absolute without ..", m.target));
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
    let mut used = host_root_paths.clone();
    used.extend(mounts.iter().map(|m| m.source.clone()));
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
        hosts: spec.hosts.clone().unwrap_or_else(|| default_hosts(&spec.hostname)),
        resolv_conf,
        hostname: format!("{}\n", spec.hostname),
        userns: rootless,
        netns,
    };
    let proc_plan = ProcessPlan {
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        user: spec.user.clone(),
        rlimits: spec.rlimits.clone(),
        single_mapping: maps.as_ref().and_then(userns::single_mapping_reason),
        mapped_ids: maps.as_ref().filter(|m| !m.maps_only_root()).map(IdMap::container_ends),
    };

    // Descriptors: the child ends are closed in the parent right after fork.
    let host = SandboxError::host;
    let devnull = || std::fs::File::options().read(true).write(true).open("/dev/null").map(OwnedFd::from);
    let (stdin_child, mut stdin_writer, stdin_bytes) = match &spec.stdin {
        Stdin::Null => (Some(devnull().map_err(|e| host("open /dev/null", e))?), None, Vec::new()),
        Stdin::Inherit => (None, None, Vec::new()),
        Stdin::Bytes(b) => {
            let (r, w) = sys::pipe().map_err(|e| host("stdin pipe", e))?;
            (Some(r), Some(w), b.clone())
        }
    };
    let mut output = spec.output;
    let (out_child, err_child, mut out_reader, mut err_reader) = match &output {
        Output::Inherit => (None, None, None, None),
        Output::Null => {
            let n = devnull().map_err(|e| host("open /dev/null", e))?;
            let n2 = n.try_clone().map_err(|e| host("dup", e))?;
            (Some(n), Some(n2), None, None)
        }
        Output::Capture(_) => {
            let (or, ow) = sys::pipe().map_err(|e| host("stdout pipe", e))?;
            let (er, ew) = sys::pipe().map_err(|e| host("stderr pipe", e))?;
            (Some(ow), Some(ew), Some(or), Some(er))
        }
    };
    let (report_r, report_w) = sys::pipe().map_err(|e| host("report pipe", e))?;
    // Rootless, the sandbox joins the process's user namespace (made once,
    // with the subordinate ids mapped) and makes the others inside it.
    let userns =
        if rootless { Some(unshared::namespace().map_err(|e| host("user namespace", e))?) } else { None };
    let fds = ChildFds { report: report_w, userns, stdin: stdin_child, stdout: out_child, stderr: err_child };
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

    // Supervise: output, report, stdin and A's exit, until all have ended.
    let pidfd = sys::pidfd_open(pid).map_err(|e| host("pidfd_open", e));
    let deadline = spec.timeout.map(|t| started + t);
    let mut decoder = Decoder::default();
    let mut report_r = Some(report_r);
    let mut stdin_pos = 0;
    let mut a_exited = pidfd.is_err();
    let (mut timed_out, mut cancelled) = (false, false);
    let mut buf = vec![0u8; 64 * 1024];
    if let Some(w) = &stdin_writer {
        let _ = sys::set_nonblocking(w);
        if stdin_bytes.is_empty() {
            stdin_writer = None;
        }
    }
    loop {
        if a_exited && out_reader.is_none() && err_reader.is_none() && report_r.is_none() {
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
        let mut wait: Option<Duration> = None;
        if !timed_out && !cancelled {
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                wait = Some(Duration::from_millis(left.as_millis().min(i32::MAX as u128) as u64 + 1));
            }
            if spec.cancel.is_some() {
                let tick = Duration::from_millis(20);
                wait = Some(wait.map_or(tick, |w| w.min(tick)));
            }
        }
        let watched: [(Option<BorrowedFd<'_>>, PollFlags); 5] = [
            (borrow(&out_reader), PollFlags::IN),
            (borrow(&err_reader), PollFlags::IN),
            (borrow(&report_r), PollFlags::IN),
            (borrow(&stdin_writer), PollFlags::OUT),
            (if a_exited { None } else { pidfd.as_ref().ok().map(OwnedFd::as_fd) }, PollFlags::IN),
        ];
        let mut polls: Vec<PollFd<'_>> = Vec::with_capacity(watched.len());
        let mut slots = [None; 5];
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
        let ready = slots.map(|slot| slot.is_some_and(|i| !polls[i].revents().is_empty()));
        drop(polls);
        for (i, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if !ready[i] {
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
        if ready[2] {
            match report_r.as_ref().map_or(Ok(0), |r| sys::read(r, &mut buf)) {
                Ok(0) | Err(_) => report_r = None,
                Ok(k) => {
                    for m in decoder.feed(&buf[..k]) {
                        sup.take(m);
                    }
                }
            }
        }
        if ready[3] {
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
        if ready[4] {
            a_exited = true;
            stdin_writer = None;
        }
    }
    let a_status = sup.reap();
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

/// The caller's view of the tree.
struct Supervisor {
    a: Pid,
    a_reaped: bool,
    init: Option<Pid>,
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
