//! The operations a plan is made of: what `solve` executes, with every bit of
//! Dockerfile meaning already resolved.
//!
//! - [`RunOp`]: an argv in a root filesystem (heredocs and shebang scripts
//!   lowered, environment and network decided).
//! - [`CopyOp`]: files into the image (COPY and ADD), destination resolved.
//! - [`WorkdirOp`]: a directory made in the image (WORKDIR makes a layer).
//! - [`ConfigChange`]: a change to the image config only; no layer.

use crate::image::config::HealthConfig;

/// One operation of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// RUN.
    Run(RunOp),
    /// COPY or ADD.
    Copy(CopyOp),
    /// WORKDIR: the directory is made, and the config's working dir set.
    Workdir(WorkdirOp),
    /// Anything else: the config changes, the filesystem does not.
    Config(ConfigChange),
}

impl Op {
    /// Whether executing the operation can produce a layer.
    pub fn makes_layer(&self) -> bool {
        !matches!(self, Op::Config(_))
    }

    /// The instruction keyword, for messages.
    pub fn instruction(&self) -> &'static str {
        match self {
            Op::Run(_) => "RUN",
            Op::Copy(copy) => copy.kind.instruction(),
            Op::Workdir(_) => "WORKDIR",
            Op::Config(change) => change.instruction(),
        }
    }
}

/// The network a RUN step gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network namespace.
    #[default]
    Host,
    /// A namespace with only a loopback interface.
    None,
}

/// A process to run on the stage's filesystem; its changes become the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOp {
    /// What to execute: the shell and the command for shell form, with
    /// heredocs folded in as BuildKit folds them.
    pub argv: Vec<String>,
    /// `KEY=VALUE`: the stage's environment (ENV and ARG values).
    pub env: Vec<String>,
    /// `KEY=VALUE`: proxy build args (`HTTP_PROXY`…) the environment lacks;
    /// given to the process, kept out of the cache key, as BuildKit does.
    pub proxy_env: Vec<String>,
    /// `user[:group]` as USER set it, or `None` for the image's default.
    pub user: Option<String>,
    /// The absolute working directory.
    pub workdir: String,
    /// The network namespace.
    pub network: Network,
    /// A heredoc starting with `#!`, executed as a file of its own.
    pub inline_script: Option<InlineScript>,
}

/// A script mounted into the sandbox (read-only) and executed as `argv[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineScript {
    /// Where it is mounted: `/dev/pipes/<heredoc name>`, as BuildKit does.
    pub path: String,
    /// The script, `#!` line first.
    pub content: String,
}

/// Whether a copy came from COPY or ADD (messages, and what ADD adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// COPY.
    Copy,
    /// ADD: local tar archives are unpacked.
    Add,
}

impl CopyKind {
    /// `COPY` or `ADD`.
    pub fn instruction(self) -> &'static str {
        match self {
            CopyKind::Copy => "COPY",
            CopyKind::Add => "ADD",
        }
    }
}

/// Where a copy takes its files from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFrom {
    /// The build context.
    Context,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image, by the reference written in `--from`.
    Image(String),
}

/// Files copied into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOp {
    /// COPY or ADD.
    pub kind: CopyKind,
    /// The source of `sources`.
    pub from: CopyFrom,
    /// Paths or wildcard patterns, relative to the source's root.
    pub sources: Vec<String>,
    /// Files given inline (heredocs), written after the sources.
    pub inline_files: Vec<InlineFile>,
    /// Where they go: an absolute path in the image.
    pub dest: String,
    /// Whether `dest` is a directory whatever the image holds there (a
    /// trailing `/`, `.`, or several sources).
    pub dest_is_dir: bool,
    /// `--chown=user[:group]`, resolved against the image's passwd/group.
    pub chown: Option<String>,
    /// `--chmod`, parsed.
    pub chmod: Option<u32>,
    /// ADD: a local tar archive (plain or compressed) is unpacked.
    pub unpack_archives: bool,
}

/// A file whose content is in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// Its name in the destination directory.
    pub name: String,
    /// The content, expanded where the heredoc asks for expansion.
    pub content: String,
    /// Its permission bits (before `--chmod`).
    pub mode: u32,
}

/// WORKDIR: the directory (and its parents) made in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkdirOp {
    /// The absolute path.
    pub path: String,
    /// USER at that point: new directories belong to it.
    pub user: Option<String>,
}

/// A change to the image config, values resolved (expanded, shell form
/// wrapped in the SHELL of the moment, ports normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// ARG: no config change; its declarations (default expanded) are
    /// kept for the history row.
    Arg(Vec<(String, Option<String>)>),
    /// ENV pairs, in order.
    Env(Vec<(String, String)>),
    /// LABEL pairs, in order.
    Label(Vec<(String, String)>),
    /// CMD argv.
    Cmd(Vec<String>),
    /// ENTRYPOINT argv.
    Entrypoint(Vec<String>),
    /// SHELL argv.
    Shell(Vec<String>),
    /// WORKDIR's effect on the config (the absolute path); as a step it is
    /// a [`WorkdirOp`].
    Workdir(String),
    /// USER.
    User(String),
    /// VOLUME paths.
    Volume(Vec<String>),
    /// EXPOSE ports, each `port/proto` in lower case.
    Expose(Vec<String>),
    /// STOPSIGNAL.
    StopSignal(String),
    /// MAINTAINER: the config's author.
    Maintainer(String),
    /// HEALTHCHECK (`NONE` is a test of `["NONE"]`).
    Healthcheck(HealthConfig),
    /// ONBUILD: the trigger's text.
    Onbuild(String),
}

impl ConfigChange {
    /// The instruction keyword, for messages.
    pub fn instruction(&self) -> &'static str {
        match self {
            ConfigChange::Arg(_) => "ARG",
            ConfigChange::Env(_) => "ENV",
            ConfigChange::Label(_) => "LABEL",
            ConfigChange::Cmd(_) => "CMD",
            ConfigChange::Entrypoint(_) => "ENTRYPOINT",
            ConfigChange::Shell(_) => "SHELL",
            ConfigChange::Workdir(_) => "WORKDIR",
            ConfigChange::User(_) => "USER",
            ConfigChange::Volume(_) => "VOLUME",
            ConfigChange::Expose(_) => "EXPOSE",
            ConfigChange::StopSignal(_) => "STOPSIGNAL",
            ConfigChange::Maintainer(_) => "MAINTAINER",
            ConfigChange::Healthcheck(_) => "HEALTHCHECK",
            ConfigChange::Onbuild(_) => "ONBUILD",
        }
    }
}
