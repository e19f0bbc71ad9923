//! One stage's instructions → its steps and final config, as BuildKit's
//! `dispatch` functions (`frontend/dockerfile/dockerfile2llb/convert.go`)
//! do it.
//!
//! - The stage starts from its base: an image's config (its Env in the
//!   build environment, a PATH added when it has none, its ONBUILD
//!   triggers run first and not inherited), a previous stage's whole state
//!   (environment and build args included), or BuildKit's empty image.
//! - Words are expanded in the build environment ([`StateEnv`]); each step
//!   records the build args it used (its cache key's only build-arg input).
//! - Config-only instructions change the config here; RUN, COPY, ADD and
//!   WORKDIR are lowered to ops; every step gets its history text.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{self, change_of};
use super::lower::{self, ExpandedCopy};
use super::ops::{ConfigChange, CopyFrom, CopyKind, Op, WorkdirOp};
use super::scope::{Expander, GlobalArgs, StateEnv, Vars, proxy_env};
use super::{Base, DEFAULT_PATH, PlanRequest, StageHeader, StagePlan, Step, history, stage_by_ref};
use crate::diagnostic::{Diagnostic, Span};
use crate::dockerfile::instructions::{self, Command, Instruction, SourcesAndDest};
use crate::dockerfile::shell::ShellLexer;
use crate::image::config::ImageConfig;

/// What a stage is planned with besides its own instructions.
pub struct StageContext<'a> {
    /// The user's request.
    pub request: &'a PlanRequest,
    /// The ARGs before the first FROM.
    pub globals: &'a GlobalArgs,
    /// Every stage's FROM, for `COPY --from`.
    pub headers: &'a [StageHeader],
    /// Word expansion with the file's escape character.
    pub lexer: &'a ShellLexer,
}

/// Where a stage ends: what a stage built on it starts from.
#[derive(Debug, Clone, Default)]
pub struct StageEnd {
    /// The build environment.
    pub state: StateEnv,
    /// The ARG declarations in force (BuildKit's `buildArgs`), for the
    /// `|N K=V` prefix of RUN history rows.
    pub build_args: Vec<(String, Option<String>)>,
}

/// Plans one stage. `parent` is the end of the stage it builds on, if
/// any. Build args it takes are added to `consumed`.
pub fn plan_stage(
    header: StageHeader,
    base_config: ImageConfig,
    parent: Option<&StageEnd>,
    body: &[Instruction],
    context: &StageContext<'_>,
    consumed: &mut BTreeSet<String>,
) -> Result<(StagePlan, StageEnd), Diagnostic> {
    let mut config = base_config.clone();
    let triggers = match header.base {
        // A previous stage's ONBUILD triggers are not run (BuildKit clears
        // them when a stage builds on another).
        Base::Stage(_) => {
            config.config.on_build.clear();
            Vec::new()
        }
        _ => onbuild_triggers(&mut config, header.span)?,
    };
    // BuildKit makes sure PATH is set, appending the default.
    if !config.config.env.iter().any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "PATH") {
        config.config.env.push(format!("PATH={DEFAULT_PATH}"));
    }
    let inherited = parent.cloned().unwrap_or_default();
    let mut state = inherited.state;
    for (key, value) in Vars::from_env_list(&config.config.env).entries() {
        state.set_env(key, value);
    }
    let mut walk = Walk {
        context,
        header: &header,
        state,
        build_args: inherited.build_args,
        config,
        consumed,
        cmd_set: false,
    };
    let mut steps = Vec::with_capacity(triggers.len() + body.len());
    let all = triggers.iter().map(|i| (i, true)).chain(body.iter().map(|i| (i, false)));
    for (instruction, from_onbuild) in all {
        steps.push(walk.step(instruction, from_onbuild)?);
    }
    let end = StageEnd { state: walk.state, build_args: walk.build_args };
    let config = walk.config;
    Ok((StagePlan { header, base_config, steps, config }, end))
}

/// The base image's ONBUILD triggers, parsed; they are taken out of the
/// config (not inherited) and carry the FROM line's span.
fn onbuild_triggers(config: &mut ImageConfig, span: Span) -> Result<Vec<Instruction>, Diagnostic> {
    let mut triggers = Vec::new();
    for expression in std::mem::take(&mut config.config.on_build) {
        let fail = |message: &str| {
            Diagnostic::at(span, format!("ONBUILD trigger {expression:?} of the base image: {message}"))
        };
        let file = crate::dockerfile::parse(&format!("FROM scratch\n{expression}\n"))
            .map_err(|e| fail(&e.message))?;
        let typed = instructions::typed(&file).map_err(|e| fail(&e.message))?;
        for mut instruction in typed.into_iter().skip(1) {
            instruction.span = span;
            triggers.push(instruction);
        }
    }
    Ok(triggers)
}

/// The state of the walk through a stage.
struct Walk<'a, 'c> {
    context: &'a StageContext<'a>,
    header: &'a StageHeader,
    state: StateEnv,
    build_args: Vec<(String, Option<String>)>,
    config: ImageConfig,
    consumed: &'c mut BTreeSet<String>,
    /// Whether a CMD was set in this stage (an ENTRYPOINT keeps it then).
    cmd_set: bool,
}

impl Walk<'_, '_> {
    fn step(&mut self, instruction: &Instruction, from_onbuild: bool) -> Result<Step, Diagnostic> {
        let span = instruction.span;
        let expander = Expander { lexer: self.context.lexer, span };
        let mut used = BTreeMap::new();
        let (op, history) = match &instruction.command {
            Command::Arg { args: decls } => {
                let change = self.arg(decls, &expander, &mut used)?;
                (Op::Config(change.clone()), history::config(&change))
            }
            Command::Env { pairs } => {
                let mut expanded = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let value = expander.word(&pair.value, &self.state, &mut used)?;
                    let key = expander.word(&pair.key, &self.state, &mut used)?;
                    expanded.push((key, value));
                }
                // All pairs of one ENV line see the environment from before it.
                for (key, value) in &expanded {
                    self.state.set_env(key, value);
                }
                self.config_step(ConfigChange::Env(expanded))
            }
            Command::Run(run) => {
                // The shell expands RUN: every build arg in the environment
                // is an input.
                used.extend(self.state.args());
                let mut run = run.clone();
                run.mounts = run
                    .mounts
                    .iter()
                    .map(|m| expander.word(m, &self.state, &mut used))
                    .collect::<Result<_, _>>()?;
                let container = &self.config.config;
                let environment = lower::RunEnvironment {
                    env: self.state.vars.to_env_list(),
                    proxy_env: proxy_env(&self.state, self.context.request),
                    user: &container.user,
                    workdir: &container.working_dir,
                    shell: &container.shell,
                    default_network: self.context.request.network,
                };
                let (op, shown) = lower::run(&run, environment, span)?;
                (Op::Run(op), Some(history::run(&self.history_args(), &shown)))
            }
            Command::Copy(copy) => {
                lower::refuse_copy_flags(copy, span)?;
                let files = self.expand_files(&expander, &copy.files, &mut used)?;
                let from = match &copy.from {
                    None => CopyFrom::Context,
                    Some(from) => {
                        let from = expander.word(from, &self.state, &mut used)?;
                        copy_source(&from, self.context.headers, self.header.index, span)?
                    }
                };
                let flags = (copy.chown.as_deref(), copy.chmod.as_deref());
                self.copy_step(CopyKind::Copy, &files, from, flags, &expander, &mut used)?
            }
            Command::Add(add) => {
                let files = self.expand_files(&expander, &add.files, &mut used)?;
                lower::refuse_add_flags(add, &files.sources, span)?;
                let flags = (add.chown.as_deref(), add.chmod.as_deref());
                self.copy_step(CopyKind::Add, &files, CopyFrom::Context, flags, &expander, &mut used)?
            }
            Command::Workdir { path } => {
                let path = expander.word(path, &self.state, &mut used)?;
                let change = self.change(&Command::Workdir { path }, span)?;
                let ConfigChange::Workdir(path) = &change else {
                    unreachable!("WORKDIR changes the workdir")
                };
                let shown = history::config(&change);
                // WORKDIR / makes no layer; any other makes the directory.
                let op = if path == "/" {
                    Op::Config(change.clone())
                } else {
                    let user = &self.config.config.user;
                    Op::Workdir(WorkdirOp {
                        path: path.clone(),
                        user: (!user.is_empty()).then(|| user.clone()),
                    })
                };
                config::apply(&mut self.config, &change);
                (op, shown)
            }
            Command::User { user } => {
                let user = expander.word(user, &self.state, &mut used)?;
                let change = self.change(&Command::User { user }, span)?;
                self.config_step(change)
            }
            Command::Label { pairs } => {
                let mut expanded = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    expanded.push((
                        expander.word(&pair.key, &self.state, &mut used)?,
                        expander.word(&pair.value, &self.state, &mut used)?,
                    ));
                }
                self.config_step(ConfigChange::Label(expanded))
            }
            Command::Expose { ports } => {
                let mut expanded = Vec::new();
                for port in ports {
                    expanded.extend(expander.words(port, &self.state, &mut used)?);
                }
                let change = self.change(&Command::Expose { ports: expanded }, span)?;
                self.config_step(change)
            }
            Command::Volume { paths } => {
                // Each volume is one word: expanded, never split.
                let mut expanded = Vec::with_capacity(paths.len());
                for path in paths {
                    expanded.push(expander.word(path, &self.state, &mut used)?);
                }
                let change = self.change(&Command::Volume { paths: expanded }, span)?;
                self.config_step(change)
            }
            Command::StopSignal { signal } => {
                let signal = expander.word(signal, &self.state, &mut used)?;
                let change = self.change(&Command::StopSignal { signal }, span)?;
                self.config_step(change)
            }
            Command::From(_) => unreachable!("a stage body has no FROM"),
            Command::Cmd(_) => {
                self.cmd_set = true;
                let change = self.change(&instruction.command, span)?;
                self.config_step(change)
            }
            Command::Entrypoint(_) => {
                let change = self.change(&instruction.command, span)?;
                let cmd = self.config.config.cmd.clone();
                let step = self.config_step(change);
                // ENTRYPOINT clears CMD unless this stage set one.
                if self.cmd_set {
                    self.config.config.cmd = cmd;
                }
                step
            }
            other => {
                let change = self.change(other, span)?;
                self.config_step(change)
            }
        };
        self.consumed.extend(used.keys().cloned());
        Ok(Step { span, text: one_line(&instruction.original), op, history, build_args: used, from_onbuild })
    }

    /// A config-only step: the change applied now, its history row.
    fn config_step(&mut self, change: ConfigChange) -> (Op, Option<String>) {
        config::apply(&mut self.config, &change);
        let shown = history::config(&change);
        (Op::Config(change), shown)
    }

    fn change(&self, command: &Command, span: Span) -> Result<ConfigChange, Diagnostic> {
        change_of(command, &self.config).map_err(|message| Diagnostic::at(span, message))
    }

    /// ARG, as BuildKit's `dispatchArg`: a declaration takes the build
    /// arg's value, else its default (expanded), else — with neither — the
    /// global value; with a value it enters the environment. The history
    /// shows each declaration with the value it took.
    fn arg(
        &mut self,
        decls: &[instructions::ArgDecl],
        expander: &Expander<'_>,
        used: &mut BTreeMap<String, String>,
    ) -> Result<ConfigChange, Diagnostic> {
        let request = self.context.request;
        let mut shown = Vec::with_capacity(decls.len());
        for decl in decls {
            let given = request.build_args.get(&decl.name);
            let value = match (given, &decl.default) {
                (Some(given), _) => {
                    self.consumed.insert(decl.name.clone());
                    Some(given.clone())
                }
                (None, Some(default)) => Some(expander.word(default, &self.state, used)?),
                (None, None) => self.context.globals.vars.get(&decl.name).map(str::to_string),
            };
            if let Some(value) = &value {
                self.state.set_arg(&decl.name, value);
            }
            match self.build_args.iter_mut().find(|(k, _)| *k == decl.name) {
                Some(known) => known.1 = value.clone(),
                None => self.build_args.push((decl.name.clone(), value.clone())),
            }
            shown.push((decl.name.clone(), value));
        }
        Ok(ConfigChange::Arg(shown))
    }

    /// The stage's build args as a RUN's history shows them (`|2 A=1 B=2`):
    /// every declaration, its value from the environment when set there.
    fn history_args(&self) -> Vec<(String, String)> {
        self.build_args
            .iter()
            .map(|(k, v)| {
                let value =
                    self.state.vars.get(k).map(str::to_string).or_else(|| v.clone()).unwrap_or_default();
                (k.clone(), value)
            })
            .collect()
    }

    fn expand_files(
        &self,
        expander: &Expander<'_>,
        files: &SourcesAndDest,
        used: &mut BTreeMap<String, String>,
    ) -> Result<SourcesAndDest, Diagnostic> {
        let mut out = files.clone();
        out.sources =
            files.sources.iter().map(|s| expander.word(s, &self.state, used)).collect::<Result<_, _>>()?;
        out.dest = expander.word(&files.dest, &self.state, used)?;
        for content in &mut out.contents {
            if content.expand {
                content.data = expander.heredoc(&content.data, &self.state, used)?;
            }
        }
        Ok(out)
    }

    fn copy_step(
        &self,
        kind: CopyKind,
        files: &SourcesAndDest,
        from: CopyFrom,
        (chown, chmod): (Option<&str>, Option<&str>),
        expander: &Expander<'_>,
        used: &mut BTreeMap<String, String>,
    ) -> Result<(Op, Option<String>), Diagnostic> {
        let chown = expander.maybe(chown, &self.state, used)?;
        let chmod = expander.maybe(chmod, &self.state, used)?;
        let workdir = &self.config.config.working_dir;
        let flags = history::CopyFlags { chown: chown.as_deref(), chmod: chmod.as_deref(), parents: false };
        let inline_names: Vec<String> = files.contents.iter().map(|c| c.path.clone()).collect();
        let shown = history::copy(kind.instruction(), flags, &files.sources, &inline_names, &files.dest);
        let op = lower::copy(ExpandedCopy { kind, files, from, chown, chmod, workdir }, expander.span)?;
        Ok((Op::Copy(op), Some(shown)))
    }
}

/// Where `COPY --from=<from>` reads: an earlier stage by index or name, or
/// an image.
fn copy_source(
    from: &str,
    headers: &[StageHeader],
    current: usize,
    span: Span,
) -> Result<CopyFrom, Diagnostic> {
    if let Ok(index) = from.parse::<usize>() {
        if index >= current {
            return Err(Diagnostic::at(
                span,
                format!("COPY --from={index} refers to a stage that is not before this one"),
            )
            .with_hint("--from takes an earlier stage's name or index, or an image"));
        }
        return Ok(CopyFrom::Stage(index));
    }
    match stage_by_ref(headers, from) {
        Some(index) if index < current => Ok(CopyFrom::Stage(index)),
        Some(_) => {
            Err(Diagnostic::at(span, format!("COPY --from={from} refers to this stage or a later one")))
        }
        None => Ok(CopyFrom::Image(from.to_string())),
    }
}

/// The instruction on one line, shortened for a progress display.
fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(119).collect::<String>())
    } else {
        line
    }
}
