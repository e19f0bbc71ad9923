//! What a sandbox runs and what comes back: the public types of [`run`](super::run).
//!
//! - [`SandboxSpec`] with its [`RootFs`], [`Network`], [`BindMount`]s,
//!   [`Rlimit`]s, [`Stdin`] and [`Output`].
//! - What `hoist run` adds: [`Mount`]s (binds, volumes, tmpfs), [`Limits`]
//!   through cgroups, a terminal, [`Forwarding`] of signals, the process as
//!   pid 1, a [`StartHook`].
//! - [`Outcome`] and [`ExitStatus`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::sys::Resource;

/// The filesystem the process sees as `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootFs {
    /// A plain directory, bind-mounted as the root; writes land in it.
    Dir(PathBuf),
    /// An overlay mounted by the sandbox inside its own mount namespace.
    Overlay {
        /// Lower layers, topmost first.
        lower: Vec<PathBuf>,
        /// Where writes land.
        upper: PathBuf,
        /// Overlayfs work dir, empty, on the same filesystem as `upper`. After
        /// a run the sandbox leaves its `work` subdir mode 0700 (overlayfs
        /// makes it 000), so that a rootless caller can delete it.
        work: PathBuf,
    },
}

/// The network the process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A fresh network namespace with only `lo`, up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// An extra bind mount from the host into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Mount read-only; otherwise writes inside the sandbox reach the host.
    pub readonly: bool,
}

/// A mount besides the root (`hoist run`'s, RUN's): made after [`SandboxSpec::mounts`],
/// shallowest target first, so `-v /data` and `--tmpfs /data/tmp` work in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the sandbox; made (as a directory, or a file for
    /// a file source) when missing.
    pub target: String,
    /// What is mounted there.
    pub kind: MountKind,
    /// Mount it read-only.
    pub readonly: bool,
}

/// What a [`Mount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A host file or directory, bound recursively.
    Bind {
        /// The host path.
        source: PathBuf,
    },
    /// A host directory holding a volume, bound recursively. When it is
    /// empty and the image has a directory at the target, that directory's
    /// content, owners and modes are first copied into it, as Docker
    /// initialises a volume.
    Volume {
        /// The volume's directory on the host.
        source: PathBuf,
        /// Copy the image's content into an empty volume first.
        copy_up: bool,
    },
    /// A tree of unpacked layers under a writable layer, as an overlay
    /// (RUN's bind mounts: what the step writes is discarded with `upper`).
    Overlay {
        /// The layer dirs, top first.
        lower: Vec<PathBuf>,
        /// Where writes land.
        upper: PathBuf,
        /// Overlayfs's work dir, empty, on `upper`'s filesystem.
        work: PathBuf,
    },
    /// A file whose content is held in memory only: written into a tmpfs of
    /// the sandbox's own and bound at the target, never on disk (RUN's
    /// secrets).
    File {
        /// The content.
        content: FileContent,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// tmpfs's own options (`size=…,mode=…,uid=…,gid=…,nr_inodes=…`).
        data: String,
        /// Allow executing files from it (Docker's default is `noexec`).
        exec: bool,
        /// Honour set-user-ID bits (Docker's default is `nosuid`).
        suid: bool,
        /// Allow device files (Docker's default is `nodev`).
        dev: bool,
    },
}

/// The content of a [`MountKind::File`]; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct FileContent(pub Vec<u8>);

impl std::fmt::Debug for FileContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileContent({} bytes)", self.0.len())
    }
}

/// Limits on the whole sandbox through a cgroup of its own (cgroup v2, or
/// the v1 hierarchies holding each controller), created for the run and
/// removed after it. `None` leaves a resource unlimited; with every field
/// `None` no cgroup is made.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Memory in bytes (`memory.max`, `memory.limit_in_bytes`).
    pub memory: Option<u64>,
    /// Memory plus swap in bytes; `Some(-1)` unlimited swap; `None` with
    /// `memory` set is twice `memory`, as Docker does.
    pub memory_swap: Option<i64>,
    /// CPUs' worth of time per period (`cpu.max`, `cpu.cfs_quota_us`).
    pub cpus: Option<f64>,
    /// Processes and threads (`pids.max`); negative is unlimited.
    pub pids: Option<i64>,
}

impl Limits {
    /// Whether any limit is set, so that a cgroup is needed.
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.memory_swap.is_some() || self.cpus.is_some() || self.pids.is_some()
    }
}

/// Signals the caller receives while the process runs, passed on to it as
/// `docker run` passes them (HUP, INT, QUIT, TERM, USR1, USR2, ALRM, CONT,
/// and WINCH without a terminal; with one, WINCH resizes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// What SIGTERM becomes: the image's `StopSignal` (`docker stop`'s signal).
    pub stop_signal: i32,
    /// After SIGTERM or SIGINT, how long the process may take to end before
    /// the sandbox is killed; a second SIGTERM or SIGINT kills it at once.
    pub stop_timeout: Duration,
}

/// Called once with the host pid of the sandbox's pid 1 (the process itself,
/// or hoist's init with [`SandboxSpec::init`]): what `hoist rm -f` signals.
pub struct StartHook(pub Box<dyn FnOnce(i32) + Send>);

impl std::fmt::Debug for StartHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartHook(..)")
    }
}

/// A resource limit, applied to the process before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The resource limited.
    pub resource: RlimitResource,
    /// The limit enforced, in the resource's unit; `u64::MAX` is unlimited.
    pub soft: u64,
    /// The ceiling the process may raise `soft` to, in the same unit;
    /// `u64::MAX` is unlimited.
    pub hard: u64,
}

/// The resources `setrlimit` knows, named as Docker's `--ulimit` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlimitResource {
    /// `RLIMIT_AS`: address space, in bytes.
    As,
    /// `RLIMIT_CORE`: core dump size, in bytes.
    Core,
    /// `RLIMIT_CPU`: CPU time, in seconds.
    Cpu,
    /// `RLIMIT_DATA`: data segment size, in bytes.
    Data,
    /// `RLIMIT_FSIZE`: size of a file the process writes, in bytes.
    Fsize,
    /// `RLIMIT_LOCKS`: file locks held.
    Locks,
    /// `RLIMIT_MEMLOCK`: memory locked into RAM, in bytes.
    Memlock,
    /// `RLIMIT_MSGQUEUE`: bytes in POSIX message queues.
    Msgqueue,
    /// `RLIMIT_NICE`: the lowest nice value the process may set, given as `20 - nice`.
    Nice,
    /// `RLIMIT_NOFILE`: one more than the highest open file descriptor number.
    Nofile,
    /// `RLIMIT_NPROC`: processes (threads) of the real user id.
    Nproc,
    /// `RLIMIT_RSS`: resident set size, in bytes (ignored by Linux).
    Rss,
    /// `RLIMIT_RTPRIO`: ceiling on the real-time priority.
    Rtprio,
    /// `RLIMIT_RTTIME`: CPU time under real-time scheduling without blocking, in microseconds.
    Rttime,
    /// `RLIMIT_SIGPENDING`: signals queued for the real user id.
    Sigpending,
    /// `RLIMIT_STACK`: main thread stack size, in bytes.
    Stack,
}

impl RlimitResource {
    /// Parses Docker's `--ulimit` name (`nofile`, `nproc`, …).
    pub fn from_name(name: &str) -> Option<Self> {
        use RlimitResource::*;
        Some(match name {
            "as" => As,
            "core" => Core,
            "cpu" => Cpu,
            "data" => Data,
            "fsize" => Fsize,
            "locks" => Locks,
            "memlock" => Memlock,
            "msgqueue" => Msgqueue,
            "nice" => Nice,
            "nofile" => Nofile,
            "nproc" => Nproc,
            "rss" => Rss,
            "rtprio" => Rtprio,
            "rttime" => Rttime,
            "sigpending" => Sigpending,
            "stack" => Stack,
            _ => return None,
        })
    }

    pub(crate) fn resource(self) -> Resource {
        use RlimitResource::*;
        match self {
            As => Resource::As,
            Core => Resource::Core,
            Cpu => Resource::Cpu,
            Data => Resource::Data,
            Fsize => Resource::Fsize,
            Locks => Resource::Locks,
            Memlock => Resource::Memlock,
            Msgqueue => Resource::Msgqueue,
            Nice => Resource::Nice,
            Nofile => Resource::Nofile,
            Nproc => Resource::Nproc,
            Rss => Resource::Rss,
            Rtprio => Resource::Rtprio,
            Rttime => Resource::Rttime,
            Sigpending => Resource::Sigpending,
            Stack => Resource::Stack,
        }
    }
}

/// What the process reads on standard input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Stdin {
    /// `/dev/null`.
    #[default]
    Null,
    /// The caller's standard input.
    Inherit,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// A callback receiving output chunks as they arrive.
pub type OutputSink = Box<dyn FnMut(Stream, &[u8]) + Send>;

/// Where the process's stdout and stderr go.
#[derive(Default)]
pub enum Output {
    /// The caller's stdout and stderr.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// Streamed to the callback, each stream in order, as it arrives.
    Capture(OutputSink),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Inherit => f.write_str("Inherit"),
            Output::Null => f.write_str("Null"),
            Output::Capture(_) => f.write_str("Capture(..)"),
        }
    }
}

/// Everything about one sandboxed process. Build with [`SandboxSpec::new`]
/// and set the fields that differ from the defaults.
#[derive(Debug)]
pub struct SandboxSpec {
    /// The filesystem the process sees as `/`.
    pub root: RootFs,
    /// The command; `argv[0]` is looked up on the sandbox's `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// `KEY=VALUE` pairs. `PATH` and `HOME` get Docker's defaults when missing.
    pub env: Vec<String>,
    /// Working directory inside the sandbox; created (owned by the user) when missing.
    pub cwd: String,
    /// `name`, `uid`, `uid:gid`, `name:group`; `None` is root.
    pub user: Option<String>,
    /// The UTS hostname, also in `/etc/hostname`; 1 to 64 bytes.
    pub hostname: String,
    /// The network namespace the process gets.
    pub network: Network,
    /// Content of `/etc/hosts`; `None` generates Docker's default.
    pub hosts: Option<String>,
    /// Content of `/etc/resolv.conf`; `None` copies the host's (host network)
    /// or writes one without nameservers (no network).
    pub resolv_conf: Option<String>,
    /// Extra bind mounts, made recursively and in order, so a later one may cover an earlier one.
    pub mounts: Vec<BindMount>,
    /// Wall-clock time from the call's start after which the process tree
    /// is killed with `SIGKILL`; `None` waits for as long as it runs.
    pub timeout: Option<Duration>,
    /// Resource limits set in the process before exec, in order.
    pub rlimits: Vec<Rlimit>,
    /// What the process reads on standard input.
    pub stdin: Stdin,
    /// Where the process's stdout and stderr go.
    pub output: Output,
    /// Set to `true` from any thread to kill the process tree.
    pub cancel: Option<Arc<AtomicBool>>,
    /// `hoist run`'s binds, volumes and tmpfs mounts, and RUN's mounts
    /// (overlays, in-memory files; see [`Mount`]).
    pub container_mounts: Vec<Mount>,
    /// Mount the root read-only (the mounts above keep their own mode).
    pub readonly_root: bool,
    /// The capabilities the process keeps (bounding, permitted and effective
    /// sets), as a mask of capability numbers; [`default_capability_mask`](super::default_capability_mask)
    /// by default.
    pub capabilities: u64,
    /// Supplementary groups besides the user's: names from the image's
    /// `/etc/group` or numeric ids (`--group-add`).
    pub group_add: Vec<String>,
    /// Run hoist's init as pid 1, the process as pid 2 under it (RUN, and
    /// `hoist run --init`): orphans are reaped, and everything is killed when
    /// the process ends. Without it the process is pid 1 itself, as in
    /// `docker run`.
    pub init: bool,
    /// Give the process a terminal: a pseudo-terminal made in the sandbox's
    /// own devpts as its stdin, stdout and stderr. Output arrives as
    /// [`Stream::Stdout`]; [`Stdin::Inherit`] copies the caller's input to it,
    /// in raw mode while it runs when that is a terminal, whose window size
    /// the pty follows.
    pub tty: bool,
    /// Pass the signals the caller receives on to the process (see
    /// [`Forwarding`]); the caller's handlers are restored afterwards. Only
    /// one run in a process at a time should forward.
    pub forward_signals: Option<Forwarding>,
    /// Limits through a cgroup.
    pub limits: Limits,
    /// Told the host pid of pid 1 once the sandbox is up.
    pub on_start: Option<StartHook>,
}

impl SandboxSpec {
    /// A spec running `argv` as root in `/`, hostname `hoist`, no network,
    /// no timeout, stdin from `/dev/null`, output inherited, under hoist's
    /// init, with Docker's default capabilities and no other limits.
    pub fn new(root: RootFs, argv: Vec<String>) -> Self {
        SandboxSpec {
            root,
            argv,
            env: Vec::new(),
            cwd: "/".to_string(),
            user: None,
            hostname: "hoist".to_string(),
            network: Network::None,
            hosts: None,
            resolv_conf: None,
            mounts: Vec::new(),
            timeout: None,
            rlimits: Vec::new(),
            stdin: Stdin::Null,
            output: Output::Inherit,
            cancel: None,
            container_mounts: Vec::new(),
            readonly_root: false,
            capabilities: super::default_capability_mask(),
            group_add: Vec::new(),
            init: true,
            tty: false,
            forward_signals: None,
            limits: Limits::default(),
            on_start: None,
        }
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited by itself with this status code (0 to 255).
    Exited(i32),
    /// Killed by this signal (`SIGKILL` after a timeout or cancellation).
    Signaled(i32),
}

impl ExitStatus {
    /// Whether the process exited with status 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

/// The result of a sandbox run whose process was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How the process ended.
    pub status: ExitStatus,
    /// The process tree was killed because [`SandboxSpec::timeout`] passed.
    pub timed_out: bool,
    /// The process tree was killed because [`SandboxSpec::cancel`] was set.
    pub cancelled: bool,
    /// Wall-clock time of the whole run, sandbox setup and teardown included.
    pub duration: Duration,
    /// Paths (relative to the root, e.g. `etc/hosts`) that did not exist and
    /// were created only to mount onto. The sandbox removes them again before
    /// returning, but an overlay may keep a copied-up parent directory (e.g.
    /// `etc`) in its upper dir; a snapshot diff should ignore these paths.
    pub created_mount_points: Vec<PathBuf>,
}
