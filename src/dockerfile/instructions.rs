//! Typed instructions: a parsed [`Dockerfile`] becomes [`Instruction`]s with their flags parsed.
//!
//! - [`typed`], [`instruction`]: check what BuildKit's `instructions` package
//!   checks (unknown instructions and flags, argument counts, flag values,
//!   ONBUILD triggers, HEALTHCHECK options, instructions before the first
//!   FROM).
//! - [`Instruction`], [`Command`]: one instruction and what it says, with a
//!   struct for each instruction that has flags ([`From`], [`Run`],
//!   [`Copy`](struct@Copy), [`Add`], [`Healthcheck`], [`Onbuild`]).
//! - [`strip_leading_tabs`]: what `<<-` does to a heredoc body.
//!
//! It does not expand variables and does not touch the filesystem.

use std::time::Duration;

use serde::Serialize;

use super::Diagnostic;
use super::flags::{Flags, Kind, closest};
use super::parse::{Dockerfile, Form, Heredoc, Node, Span};

/// One validated instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// The lines of the Dockerfile it was written on.
    pub span: Span,
    /// The logical line as written (continuations joined).
    pub original: String,
    /// What the instruction says: keyword, arguments and flags.
    pub command: Command,
}

/// What one instruction says, by keyword. Arguments are as written: no
/// variable is expanded yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum Command {
    /// `FROM`: starts a build stage.
    From(From),
    /// `ARG`: declares build arguments.
    Arg {
        /// The names declared, in order; at least one.
        args: Vec<ArgDecl>,
    },
    /// `RUN`: a command run in the stage's filesystem.
    Run(Run),
    /// `CMD`: the container's default command (or ENTRYPOINT's arguments).
    Cmd(CommandLine),
    /// `ENTRYPOINT`: the container's executable.
    Entrypoint(CommandLine),
    /// `SHELL`: the shell that later shell-form commands run with.
    Shell {
        /// The program and its arguments (JSON form only); at least one.
        shell: Vec<String>,
    },
    /// `ENV`: variables for later steps and for the container.
    Env {
        /// The assignments, in order; at least one.
        pairs: Vec<KeyValue>,
    },
    /// `LABEL`: metadata recorded in the image config.
    Label {
        /// The labels, in order; at least one.
        pairs: Vec<KeyValue>,
    },
    /// `MAINTAINER`: the image author (deprecated by Docker).
    Maintainer {
        /// The whole argument text.
        author: String,
    },
    /// `EXPOSE`: ports the container listens on.
    Expose {
        /// Ports as written (`80`, `53/udp`, `$PORT`), sorted as text.
        ports: Vec<String>,
    },
    /// `VOLUME`: mount points for anonymous volumes.
    Volume {
        /// The paths, blanks trimmed; none is empty.
        paths: Vec<String>,
    },
    /// `USER`: who later steps and the container run as.
    User {
        /// `user[:group]`, by name or number.
        user: String,
    },
    /// `WORKDIR`: the working directory of later steps and the container.
    Workdir {
        /// The directory; a relative one is taken from the previous WORKDIR.
        path: String,
    },
    /// `STOPSIGNAL`: the signal that stops the container.
    #[serde(rename = "STOPSIGNAL")]
    StopSignal {
        /// A signal name (`SIGTERM`) or number.
        signal: String,
    },
    /// `ADD`: like COPY, plus URLs, git repositories and archive unpacking.
    Add(Add),
    /// `COPY`: files from the build context, a stage or an image.
    Copy(Copy),
    /// `HEALTHCHECK`: how the container's health is checked.
    Healthcheck(Healthcheck),
    /// `ONBUILD`: an instruction recorded for images built FROM this one.
    Onbuild(Onbuild),
}

/// `FROM [--platform=…] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    /// The base: an image reference, an earlier stage's name or `scratch`.
    pub image: String,
    /// `AS name`, lowercased.
    pub stage_name: Option<String>,
    /// `--platform` (`linux/arm64`, `$BUILDPLATFORM`); `None` when not given.
    pub platform: Option<String>,
}

/// One name declared by ARG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The argument's name; never empty.
    pub name: String,
    /// The text after `=`, quotes still in it; `None` when there is no `=`.
    pub default: Option<String>,
}

/// One `key=value` (or legacy `key value`) of ENV or LABEL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The name; never empty.
    pub key: String,
    /// The value, quotes and escapes still in it.
    pub value: String,
}

/// The command of RUN, CMD or ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandLine {
    /// Exec form: the array; shell form: one string.
    pub args: Vec<String>,
    /// Shell form: run through the stage's SHELL.
    pub prepend_shell: bool,
    /// Heredocs of the line (`RUN <<EOF`).
    pub files: Vec<Heredoc>,
}

/// `RUN` with its flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The command and the heredocs it reads.
    pub command: CommandLine,
    /// Each `--mount` value (`type=cache,target=/root/.cache`), in order.
    pub mounts: Vec<String>,
    /// `--network` (`default`, `none` or `host`), not yet checked; `None`
    /// when not given.
    pub network: Option<String>,
    /// `--security` (`sandbox` or `insecure`), not yet checked; `None` when
    /// not given.
    pub security: Option<String>,
    /// Each `--device` value, in order.
    pub devices: Vec<String>,
}

/// A heredoc used as a COPY/ADD source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceContent {
    /// The file's name: the heredoc's terminator word.
    pub path: String,
    /// Leading tabs already stripped for `<<-`.
    pub data: String,
    /// Whether variables in `data` are expanded: false when the terminator
    /// was quoted.
    pub expand: bool,
}

/// The arguments of COPY or ADD: sources, then the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcesAndDest {
    /// Source paths, patterns or URLs; heredoc sources are in `contents`.
    pub sources: Vec<String>,
    /// The heredocs used as sources, in order.
    pub contents: Vec<SourceContent>,
    /// The destination path; never a heredoc.
    pub dest: String,
}

/// `COPY` with its flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// What is copied, and where to.
    pub files: SourcesAndDest,
    /// `--from`: a stage name or index, or an image; `None` copies from the
    /// build context.
    pub from: Option<String>,
    /// `--chown=user[:group]`; `None` when not given.
    pub chown: Option<String>,
    /// `--chmod`: an octal mode such as `0755`, checked by the planner; `None`
    /// when not given.
    pub chmod: Option<String>,
    /// `--link`: the layer is built apart from the layers below it.
    pub link: bool,
    /// `--parents`: sources keep their parent directories under `dest`.
    pub parents: bool,
    /// Each `--exclude` pattern, in order.
    pub exclude: Vec<String>,
}

/// `ADD` with its flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    /// What is added, and where to.
    pub files: SourcesAndDest,
    /// `--chown=user[:group]`; `None` when not given.
    pub chown: Option<String>,
    /// `--chmod`: an octal mode such as `0755`, checked by the planner; `None`
    /// when not given.
    pub chmod: Option<String>,
    /// `--link`: the layer is built apart from the layers below it.
    pub link: bool,
    /// `--keep-git-dir`: a git source keeps its `.git` directory.
    pub keep_git_dir: bool,
    /// `--checksum`: the digest a remote source must have; `None` when not
    /// given.
    pub checksum: Option<String>,
    /// Each `--exclude` pattern, in order.
    pub exclude: Vec<String>,
    /// `--unpack`; `None` when not given, which leaves Docker's default
    /// (local archives are unpacked, downloads are not).
    pub unpack: Option<bool>,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: no check, not even the base image's.
    None,
    /// `HEALTHCHECK CMD`: a command and its options. A duration is `None`
    /// when its flag is not given, zero for an explicit `0` (inherit), and
    /// otherwise at least 1ms.
    Cmd {
        /// `["CMD", …]` for exec form, `["CMD-SHELL", "…"]` for shell form.
        test: Vec<String>,
        /// `--interval`: the time between two checks.
        interval: Option<Duration>,
        /// `--timeout`: how long one check may run.
        timeout: Option<Duration>,
        /// `--start-period`: time after start in which failures do not count.
        start_period: Option<Duration>,
        /// `--start-interval`: the time between checks during the start
        /// period.
        start_interval: Option<Duration>,
        /// `--retries`: consecutive failures that make the container
        /// unhealthy; `None` when not given.
        retries: Option<u32>,
    },
}

/// `ONBUILD` with its trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Onbuild {
    /// The trigger, typed as if written alone on the ONBUILD line; never
    /// FROM, MAINTAINER or ONBUILD.
    pub trigger: Box<Instruction>,
    /// The trigger as text, recorded in the image config.
    pub expression: String,
}

const INSTRUCTIONS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Types every instruction and checks that each one but ARG follows a FROM.
pub fn typed(file: &Dockerfile) -> Result<Vec<Instruction>, Diagnostic> {
    let mut out = Vec::with_capacity(file.nodes.len());
    let mut seen_from = false;
    for node in &file.nodes {
        let instruction = instruction(node)?;
        match instruction.command {
            Command::From(_) => seen_from = true,
            Command::Arg { .. } => {}
            _ if !seen_from => {
                return Err(error(
                    node,
                    format!(
                        "{} comes before any FROM: no build stage in current context",
                        node.keyword.to_uppercase()
                    ),
                )
                .with_hint(format!(
                    "start a build stage with a FROM line (for example `FROM scratch`) above line {}; only ARG may come before the first FROM",
                    node.span.start
                )));
            }
            _ => {}
        }
        out.push(instruction);
    }
    Ok(out)
}

/// Types one instruction.
pub fn instruction(node: &Node) -> Result<Instruction, Diagnostic> {
    let command = command(node)?;
    Ok(Instruction { span: node.span, original: node.original.clone(), command })
}

pub(super) fn error(node: &Node, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        message: message.into(),
        line: node.span.start,
        end_line: node.span.end,
        column: node.column,
        hint: None,
    }
}

fn command(node: &Node) -> Result<Command, Diagnostic> {
    let name = node.keyword.to_uppercase();
    let args = &node.args;
    let exactly_one = || -> Result<String, Diagnostic> {
        match args.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(error(node, format!("{name} requires exactly one argument"))
                .with_hint(format!("write `{name} <value>`"))),
        }
    };
    let at_least_one = || -> Result<(), Diagnostic> {
        if args.is_empty() {
            Err(error(node, format!("{name} requires at least one argument")))
        } else {
            Ok(())
        }
    };
    let command = match node.keyword.as_str() {
        "from" => {
            let mut flags = Flags::parse(node, &[("platform", Kind::String)])?;
            let stage_name = match args.as_slice() {
                [_] => None,
                [_, as_, stage] if as_.eq_ignore_ascii_case("as") => {
                    let stage = stage.to_lowercase();
                    if !valid_stage_name(&stage) {
                        return Err(error(
                            node,
                            format!(
                                "invalid name for build stage: {}, name can't start with a number or contain symbols",
                                super::parse::go_quote(&args[2])
                            ),
                        )
                        .with_hint("stage names match [a-z][a-z0-9-_.]*"));
                    }
                    Some(stage)
                }
                _ => {
                    return Err(error(node, "FROM requires either one or three arguments")
                        .with_hint("write `FROM image` or `FROM image AS name`"));
                }
            };
            Command::From(From { image: args[0].clone(), stage_name, platform: flags.string("platform") })
        }
        "arg" => {
            let flags = Flags::parse(node, &[("required", Kind::Bool)])?;
            flags.finish();
            at_least_one()?;
            let mut decls = Vec::with_capacity(args.len());
            for arg in args {
                let (name, default) = match arg.split_once('=') {
                    Some((name, value)) => (name.to_string(), Some(value.to_string())),
                    None => (arg.clone(), None),
                };
                if name.is_empty() {
                    return Err(error(node, "ARG names can not be blank"));
                }
                decls.push(ArgDecl { name, default });
            }
            Command::Arg { args: decls }
        }
        "run" => {
            let mut flags = Flags::parse(
                node,
                &[
                    ("mount", Kind::Strings),
                    ("network", Kind::String),
                    ("security", Kind::String),
                    ("device", Kind::Strings),
                ],
            )?;
            Command::Run(Run {
                command: command_line(node),
                mounts: flags.strings("mount"),
                network: flags.string("network"),
                security: flags.string("security"),
                devices: flags.strings("device"),
            })
        }
        "cmd" => {
            Flags::parse(node, &[])?;
            Command::Cmd(command_line(node))
        }
        "entrypoint" => {
            Flags::parse(node, &[])?;
            Command::Entrypoint(command_line(node))
        }
        "shell" => {
            Flags::parse(node, &[])?;
            if node.form != Some(Form::Exec) {
                return Err(error(node, "SHELL requires the arguments to be in JSON form")
                    .with_hint("write `SHELL [\"/bin/sh\", \"-c\"]`"));
            }
            at_least_one()?;
            Command::Shell { shell: args.clone() }
        }
        "env" | "label" => {
            Flags::parse(node, &[])?;
            at_least_one()?;
            let mut pairs = Vec::with_capacity(args.len() / 3);
            for triple in args.chunks(3) {
                let [key, value, _] = triple else {
                    return Err(error(node, format!("too many arguments to {name}")));
                };
                if key.is_empty() {
                    return Err(error(node, format!("{name} names can not be blank")));
                }
                pairs.push(KeyValue { key: key.clone(), value: value.clone() });
            }
            if name == "ENV" { Command::Env { pairs } } else { Command::Label { pairs } }
        }
        "maintainer" => {
            Flags::parse(node, &[])?;
            Command::Maintainer { author: exactly_one()? }
        }
        "expose" => {
            Flags::parse(node, &[])?;
            at_least_one()?;
            let mut ports = args.clone();
            ports.sort();
            Command::Expose { ports }
        }
        "volume" => {
            Flags::parse(node, &[])?;
            at_least_one()?;
            let mut paths = Vec::with_capacity(args.len());
            for path in args {
                let path = path.trim();
                if path.is_empty() {
                    return Err(error(node, "VOLUME specified can not be an empty string"));
                }
                paths.push(path.to_string());
            }
            Command::Volume { paths }
        }
        "user" => {
            Flags::parse(node, &[])?;
            Command::User { user: exactly_one()? }
        }
        "workdir" => {
            Flags::parse(node, &[])?;
            Command::Workdir { path: exactly_one()? }
        }
        "stopsignal" => {
            Flags::parse(node, &[])?;
            Command::StopSignal { signal: exactly_one()? }
        }
        "copy" => {
            let mut flags = Flags::parse(
                node,
                &[
                    ("from", Kind::String),
                    ("chown", Kind::String),
                    ("chmod", Kind::String),
                    ("link", Kind::Bool),
                    ("parents", Kind::Bool),
                    ("exclude", Kind::Strings),
                ],
            )?;
            Command::Copy(Copy {
                files: sources_and_dest(node)?,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link").unwrap_or(false),
                parents: flags.bool("parents").unwrap_or(false),
                exclude: flags.strings("exclude"),
            })
        }
        "add" => {
            let mut flags = Flags::parse(
                node,
                &[
                    ("chown", Kind::String),
                    ("chmod", Kind::String),
                    ("link", Kind::Bool),
                    ("keep-git-dir", Kind::Bool),
                    ("checksum", Kind::String),
                    ("exclude", Kind::Strings),
                    ("unpack", Kind::Bool),
                ],
            )?;
            Command::Add(Add {
                files: sources_and_dest(node)?,
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link").unwrap_or(false),
                keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
                checksum: flags.string("checksum"),
                exclude: flags.strings("exclude"),
                unpack: flags.bool("unpack"),
            })
        }
        "healthcheck" => Command::Healthcheck(healthcheck(node)?),
        "onbuild" => {
            Flags::parse(node, &[])?;
            let Some(trigger) = &node.trigger else {
                return Err(error(node, "ONBUILD requires at least one argument")
                    .with_hint("write `ONBUILD <instruction>`, for example `ONBUILD RUN make`"));
            };
            match trigger.keyword.as_str() {
                "onbuild" => {
                    return Err(error(node, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"));
                }
                "from" | "maintainer" => {
                    return Err(error(
                        node,
                        format!("{} isn't allowed as an ONBUILD trigger", trigger.keyword.to_uppercase()),
                    ));
                }
                _ => {}
            }
            let mut trigger_node = (**trigger).clone();
            trigger_node.span = node.span;
            trigger_node.heredocs = node.heredocs.clone();
            let typed_trigger = instruction(&trigger_node)?;
            let mut expression = strip_onbuild(&node.original).to_string();
            for heredoc in &node.heredocs {
                expression.push('\n');
                expression.push_str(&heredoc.content);
                expression.push_str(&heredoc.name);
            }
            Command::Onbuild(Onbuild { trigger: Box::new(typed_trigger), expression })
        }
        other => {
            let written = node.original.split_whitespace().next().unwrap_or(other);
            let mut err = error(node, format!("unknown instruction: {written}"));
            err.hint = Some(match closest(&other.to_uppercase(), &INSTRUCTIONS) {
                Some(best) => format!("did you mean {best}?"),
                None => format!("instructions are {}", INSTRUCTIONS.join(", ")),
            });
            return Err(err);
        }
    };
    Ok(command)
}

fn strip_onbuild(original: &str) -> &str {
    let text = original.trim_start();
    text.get(7..).map_or("", |rest| rest.trim_start())
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn command_line(node: &Node) -> CommandLine {
    let exec = node.form == Some(Form::Exec);
    let args = if exec || node.args.is_empty() { node.args.clone() } else { vec![node.args.join(" ")] };
    CommandLine { args, prepend_shell: !exec, files: node.heredocs.clone() }
}

fn sources_and_dest(node: &Node) -> Result<SourcesAndDest, Diagnostic> {
    let name = node.keyword.to_uppercase();
    let Some((dest, sources)) = node.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(error(
            node,
            format!(
                "{name} requires at least two arguments, but only one was provided. Destination could not be determined."
            ),
        )
        .with_hint(format!("write `{name} <source>… <destination>`")));
    };
    if heredoc_name(dest).is_some() {
        return Err(error(node, format!("{name} cannot accept a heredoc as a destination")));
    }
    let mut out = SourcesAndDest { sources: Vec::new(), contents: Vec::new(), dest: dest.clone() };
    for source in sources {
        match heredoc_name(source) {
            Some(heredoc) => {
                let found = node.heredocs.iter().find(|h| h.name == heredoc);
                let (data, expand, chomp) =
                    found.map_or((String::new(), true, false), |h| (h.content.clone(), h.expand, h.chomp));
                let data = if chomp { strip_leading_tabs(&data) } else { data };
                out.contents.push(SourceContent { path: heredoc, data, expand });
            }
            None => out.sources.push(source.clone()),
        }
    }
    Ok(out)
}

/// The terminator named by a `<<WORD` argument, if it is one.
fn heredoc_name(arg: &str) -> Option<String> {
    let rest = arg.trim_start_matches(|c: char| c.is_ascii_digit()).strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    Some(rest.chars().filter(|c| !matches!(c, '"' | '\'' | '\\')).collect())
}

/// `<<-` strips leading tabs from every line of the body.
pub fn strip_leading_tabs(text: &str) -> String {
    text.split_inclusive('\n').map(|line| line.trim_start_matches('\t')).collect()
}

fn healthcheck(node: &Node) -> Result<Healthcheck, Diagnostic> {
    let Some(kind) = node.args.first() else {
        return Err(error(node, "HEALTHCHECK requires at least one argument")
            .with_hint("write `HEALTHCHECK CMD <command>` or `HEALTHCHECK NONE`"));
    };
    let rest = &node.args[1..];
    let kind = kind.to_uppercase();
    if kind == "NONE" {
        if !rest.is_empty() {
            return Err(error(node, "HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(Healthcheck::None);
    }
    let mut flags = Flags::parse(
        node,
        &[
            ("interval", Kind::String),
            ("timeout", Kind::String),
            ("start-period", Kind::String),
            ("start-interval", Kind::String),
            ("retries", Kind::String),
        ],
    )?;
    if kind != "CMD" {
        return Err(error(node, format!("Unknown type \"{kind}\" in HEALTHCHECK (try CMD)"))
            .with_hint("write `HEALTHCHECK CMD <command>`"));
    }
    let exec = node.form == Some(Form::Exec);
    let command: Vec<String> = if exec || rest.is_empty() { rest.to_vec() } else { vec![rest.join(" ")] };
    if command.is_empty() {
        return Err(error(node, "Missing command after HEALTHCHECK CMD"));
    }
    let mut test = vec![if exec { "CMD" } else { "CMD-SHELL" }.to_string()];
    test.extend(command);
    let mut duration = |name: &str| -> Result<Option<Duration>, Diagnostic> {
        let Some(text) = flags.string(name) else { return Ok(None) };
        let parsed = parse_go_duration(&text).ok_or_else(|| {
            error(node, format!("time: invalid duration \"{text}\" for --{name}"))
                .with_hint("durations look like 30s, 1m30s, 500ms")
        })?;
        match parsed {
            None => Ok(Some(Duration::ZERO)),
            Some(d) if d < Duration::from_millis(1) => {
                Err(error(node, format!("Interval \"{name}\" cannot be less than 1ms")))
            }
            Some(d) => Ok(Some(d)),
        }
    };
    let interval = duration("interval")?;
    let timeout = duration("timeout")?;
    let start_period = duration("start-period")?;
    let start_interval = duration("start-interval")?;
    let retries = match flags.string("retries") {
        None => None,
        Some(text) => match text.parse::<i32>() {
            Ok(n) if n < 0 => {
                return Err(error(node, format!("--retries cannot be negative ({n})")));
            }
            Ok(n) => Some(n as u32),
            Err(_) => {
                return Err(error(node, format!("invalid --retries value \"{text}\""))
                    .with_hint("--retries takes a whole number"));
            }
        },
    };
    Ok(Healthcheck::Cmd { test, interval, timeout, start_period, start_interval, retries })
}

/// Go's `time.ParseDuration`: `None` inside for an exact zero, `Some(d)`
/// for a non-zero duration; `None` outside for text that is not a
/// duration. Negative durations come back as the smallest non-zero value so
/// that the caller's minimum check rejects them.
fn parse_go_duration(text: &str) -> Option<Option<Duration>> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(None);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += value * nanos;
    }
    if total == 0.0 {
        return Some(None);
    }
    if negative {
        return Some(Some(Duration::from_nanos(0)));
    }
    Some(Some(Duration::from_nanos(total.min(u64::MAX as f64) as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn typed_src(src: &str) -> Result<Vec<Instruction>, Diagnostic> {
        typed(&parse(src).expect("parses"))
    }

    #[test]
    fn unknown_instruction_suggests_nearest() {
        let err = typed_src("FROM a\nRUNN echo\n").unwrap_err();
        assert_eq!(err.message, "unknown instruction: RUNN");
        assert_eq!(err.hint.as_deref(), Some("did you mean RUN?"));
        assert_eq!(err.line, 2);
    }

    #[test]
    fn unknown_flag_names_instruction_and_column() {
        let err = typed_src("FROM a\nCOPY --chwn=1 a b\n").unwrap_err();
        assert!(err.message.contains("--chwn"), "{}", err.message);
        assert!(err.message.contains("COPY"), "{}", err.message);
        assert_eq!(err.column, 6);
        assert!(err.hint.unwrap().contains("did you mean --chown?"));
    }

    #[test]
    fn instruction_before_from_is_an_error() {
        let err = typed_src("ARG V=1\nRUN echo\nFROM a\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.hint.unwrap().contains("FROM"));
    }

    #[test]
    fn from_with_stage_name_and_platform() {
        let out = typed_src("FROM --platform=linux/amd64 alpine AS Build\n").unwrap();
        assert_eq!(
            out[0].command,
            Command::From(From {
                image: "alpine".into(),
                stage_name: Some("build".into()),
                platform: Some("linux/amd64".into()),
            })
        );
    }

    #[test]
    fn string_flag_without_value_is_an_error() {
        let err = typed_src("FROM a\nCOPY --from a b\n").unwrap_err();
        assert!(err.message.contains("missing a value"), "{}", err.message);
    }

    #[test]
    fn bool_flag_values() {
        let out = typed_src("FROM a\nCOPY --link --parents=false a b\n").unwrap();
        let Command::Copy(copy) = &out[1].command else { panic!() };
        assert!(copy.link);
        assert!(!copy.parents);
        assert!(typed_src("FROM a\nCOPY --link=maybe a b\n").is_err());
    }

    #[test]
    fn repeated_mount_flags_accumulate() {
        let out = typed_src("FROM a\nRUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b true\n")
            .unwrap();
        let Command::Run(run) = &out[1].command else { panic!() };
        assert_eq!(run.mounts.len(), 2);
        assert!(run.command.prepend_shell);
    }

    #[test]
    fn healthcheck_options_parse() {
        let out = typed_src("FROM a\nHEALTHCHECK --interval=1m30s --retries=3 CMD curl -f x\n").unwrap();
        let Command::Healthcheck(Healthcheck::Cmd { test, interval, retries, .. }) = &out[1].command else {
            panic!()
        };
        assert_eq!(test, &vec!["CMD-SHELL".to_string(), "curl -f x".to_string()]);
        assert_eq!(*interval, Some(Duration::from_secs(90)));
        assert_eq!(*retries, Some(3));
    }

    #[test]
    fn healthcheck_rejects_tiny_interval() {
        assert!(typed_src("FROM a\nHEALTHCHECK --interval=10us CMD x\n").is_err());
        assert!(typed_src("FROM a\nHEALTHCHECK --retries=-1 CMD x\n").is_err());
    }

    #[test]
    fn onbuild_rejects_from_and_chaining() {
        assert!(typed_src("FROM a\nONBUILD FROM b\n").is_err());
        assert!(typed_src("FROM a\nONBUILD ONBUILD RUN x\n").is_err());
        let out = typed_src("FROM a\nONBUILD RUN make\n").unwrap();
        let Command::Onbuild(onbuild) = &out[1].command else { panic!() };
        assert_eq!(onbuild.expression, "RUN make");
    }

    #[test]
    fn copy_heredoc_becomes_content() {
        let out = typed_src("FROM a\nCOPY <<-EOF /f\n\thello\n\tEOF\n").unwrap();
        let Command::Copy(copy) = &out[1].command else { panic!() };
        assert_eq!(copy.files.contents[0].data, "hello\n");
        assert_eq!(copy.files.dest, "/f");
        assert!(copy.files.sources.is_empty());
    }

    #[test]
    fn shell_requires_json() {
        assert!(typed_src("FROM a\nSHELL /bin/sh -c\n").is_err());
    }

    #[test]
    fn copy_requires_destination() {
        let err = typed_src("FROM a\nCOPY onlyone\n").unwrap_err();
        assert!(err.message.contains("at least two arguments"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1.5h"), Some(Some(Duration::from_secs(5400))));
        assert_eq!(parse_go_duration("0"), Some(None));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("300ms"), Some(Some(Duration::from_millis(300))));
    }
}
