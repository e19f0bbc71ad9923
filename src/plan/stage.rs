//! One stage's instructions → its steps and final config.
//!
//! - ONBUILD triggers of the base image run first, then are not inherited.
//! - Words are expanded with BuildKit's ARG/ENV scoping; each step records
//!   the build args it used (its cache key's only build-arg input).
//! - Config-only instructions change the config here; RUN, COPY, ADD and
//!   WORKDIR are lowered to ops; every step gets its history text.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{self, change_of};
use super::lower::{self, ExpandedCopy};
use super::ops::{ConfigChange, CopyFrom, CopyKind, Op, WorkdirOp};
use super::scope::{Expander, GlobalArgs, Vars, is_platform_arg, visible_args};
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

/// Plans one stage. Build args it takes are added to `consumed`.
pub fn plan_stage(
    header: StageHeader,
    base_config: ImageConfig,
    body: &[Instruction],
    context: &StageContext<'_>,
    consumed: &mut BTreeSet<String>,
) -> Result<StagePlan, Diagnostic> {
    let mut config = base_config.clone();
    // BuildKit gives a stage whose base sets no PATH the default one, in
    // the image config as well as for RUN.
    if !matches!(header.base, Base::Stage(_)) && !config.config.env.iter().any(|e| e.starts_with("PATH=")) {
        config.config.env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    let triggers = onbuild_triggers(&mut config, header.span)?;
    let mut walk = Walk {
        context,
        header: &header,
        env: Vars::from_env_list(&config.config.env),
        args: Vars::default(),
        config,
        consumed,
    };
    let mut steps = Vec::with_capacity(triggers.len() + body.len());
    let all = triggers.iter().map(|i| (i, true)).chain(body.iter().map(|i| (i, false)));
    for (instruction, from_onbuild) in all {
        steps.push(walk.step(instruction, from_onbuild)?);
    }
    let config = walk.config;
    Ok(StagePlan { header, base_config, steps, config })
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
    env: Vars,
    args: Vars,
    config: ImageConfig,
    consumed: &'c mut BTreeSet<String>,
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
                    let value = expander.word(&pair.value, &self.env, &self.args, &mut used)?;
                    let key = expander.word(&pair.key, &self.env, &self.args, &mut used)?;
                    expanded.push((key, value));
                }
                // All pairs of one ENV line see the env from before the line.
                for (key, value) in &expanded {
                    self.env.set(key, value);
                }
                self.config_step(ConfigChange::Env(expanded))
            }
            Command::Run(run) => {
                let mut argv = run.command.args.clone();
                if run.command.prepend_shell {
                    argv = config::with_shell(&self.config.config.shell, true, &argv);
                }
                // The shell expands RUN; the build args it can see are what
                // its cache key depends on.
                let visible = visible_args(&self.args, &self.env, self.context.request);
                for (k, v) in self.args.entries() {
                    if self.env.get(k).is_none() {
                        used.insert(k.clone(), v.clone());
                    }
                }
                let mut env = self.env.to_env_list();
                env.extend(visible.to_env_list());
                if !env.iter().any(|e| e.starts_with("PATH=")) {
                    env.push(format!("PATH={DEFAULT_PATH}"));
                }
                let mut run = run.clone();
                run.mounts = run
                    .mounts
                    .iter()
                    .map(|m| expander.word(m, &self.env, &self.args, &mut used))
                    .collect::<Result<_, _>>()?;
                let container = &self.config.config;
                let (op, shown) = lower::run(
                    &run,
                    &argv,
                    env,
                    &container.user,
                    &container.working_dir,
                    self.context.request.network,
                    span,
                )?;
                (Op::Run(op), Some(history::run(&self.history_args(), &shown)))
            }
            Command::Copy(copy) => {
                lower::refuse_copy_flags(copy, span)?;
                let files = self.expand_files(&expander, &copy.files, &mut used)?;
                let from = match &copy.from {
                    None => CopyFrom::Context,
                    Some(from) => {
                        let from = expander.word(from, &self.env, &self.args, &mut used)?;
                        copy_source(&from, self.context.headers, self.header.index, span)?
                    }
                };
                self.copy_step(
                    CopyKind::Copy,
                    &files,
                    from,
                    copy.chown.as_deref(),
                    copy.chmod.as_deref(),
                    &expander,
                    &mut used,
                )?
            }
            Command::Add(add) => {
                let files = self.expand_files(&expander, &add.files, &mut used)?;
                lower::refuse_add_flags(add, &files.sources, span)?;
                self.copy_step(
                    CopyKind::Add,
                    &files,
                    CopyFrom::Context,
                    add.chown.as_deref(),
                    add.chmod.as_deref(),
                    &expander,
                    &mut used,
                )?
            }
            Command::Workdir { path } => {
                let path = expander.word(path, &self.env, &self.args, &mut used)?;
                let change = self.change(&Command::Workdir { path }, span)?;
                let ConfigChange::Workdir(path) = &change else {
                    unreachable!("WORKDIR changes the workdir")
                };
                let user = &self.config.config.user;
                let op = WorkdirOp { path: path.clone(), user: (!user.is_empty()).then(|| user.clone()) };
                let shown = history::config(&change);
                config::apply(&mut self.config, &change);
                (Op::Workdir(op), shown)
            }
            Command::User { user } => {
                let user = expander.word(user, &self.env, &self.args, &mut used)?;
                let change = self.change(&Command::User { user }, span)?;
                self.config_step(change)
            }
            Command::Label { pairs } => {
                let mut expanded = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    expanded.push((
                        expander.word(&pair.key, &self.env, &self.args, &mut used)?,
                        expander.word(&pair.value, &self.env, &self.args, &mut used)?,
                    ));
                }
                self.config_step(ConfigChange::Label(expanded))
            }
            Command::Expose { ports } => {
                let mut expanded = Vec::new();
                for port in ports {
                    expanded.extend(expander.words(port, &self.env, &self.args, &mut used)?);
                }
                let change = self.change(&Command::Expose { ports: expanded }, span)?;
                self.config_step(change)
            }
            Command::Volume { paths } => {
                let mut expanded = Vec::new();
                for path in paths {
                    expanded.extend(expander.words(path, &self.env, &self.args, &mut used)?);
                }
                self.config_step(ConfigChange::Volume(expanded))
            }
            Command::StopSignal { signal } => {
                let signal = expander.word(signal, &self.env, &self.args, &mut used)?;
                self.config_step(ConfigChange::StopSignal(signal))
            }
            Command::From(_) => unreachable!("a stage body has no FROM"),
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

    /// ARG: declarations take a build arg's value, their default, or the
    /// global value; the history shows the declaration, default expanded.
    fn arg(
        &mut self,
        decls: &[instructions::ArgDecl],
        expander: &Expander<'_>,
        used: &mut BTreeMap<String, String>,
    ) -> Result<ConfigChange, Diagnostic> {
        let globals = self.context.globals;
        let mut shown = Vec::with_capacity(decls.len());
        for decl in decls {
            let value = if let Some(given) = self.context.request.build_args.get(&decl.name) {
                self.consumed.insert(decl.name.clone());
                Some(given.clone())
            } else if let Some(default) = &decl.default {
                Some(expander.word(default, &self.env, &self.args, used)?)
            } else if globals.declared.contains(&decl.name) || is_platform_arg(&decl.name) {
                globals.vars.get(&decl.name).map(str::to_string)
            } else {
                None
            };
            match value {
                Some(value) => self.args.set(&decl.name, &value),
                // Declared without any value: expands to empty and is not
                // in RUN's environment.
                None => self.args.remove(&decl.name),
            }
            let default = expander.maybe(decl.default.as_deref(), &self.env, &self.args, used)?;
            shown.push((decl.name.clone(), default));
        }
        Ok(ConfigChange::Arg(shown))
    }

    /// The stage's ARGs with values, in declaration order, an ENV of the
    /// same name giving the value: what BuildKit shows before a RUN in the
    /// history (`RUN |2 A=1 B=2 …`).
    fn history_args(&self) -> Vec<(String, String)> {
        self.args
            .entries()
            .iter()
            .map(|(k, v)| (k.clone(), self.env.get(k).unwrap_or(v).to_string()))
            .collect()
    }

    fn expand_files(
        &self,
        expander: &Expander<'_>,
        files: &SourcesAndDest,
        used: &mut BTreeMap<String, String>,
    ) -> Result<SourcesAndDest, Diagnostic> {
        let mut out = files.clone();
        out.sources = files
            .sources
            .iter()
            .map(|s| expander.word(s, &self.env, &self.args, used))
            .collect::<Result<_, _>>()?;
        out.dest = expander.word(&files.dest, &self.env, &self.args, used)?;
        for content in &mut out.contents {
            if content.expand {
                content.data = expander
                    .word(&content.data, &self.env, &self.args, used)
                    .unwrap_or_else(|_| content.data.clone());
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &self,
        kind: CopyKind,
        files: &SourcesAndDest,
        from: CopyFrom,
        chown: Option<&str>,
        chmod: Option<&str>,
        expander: &Expander<'_>,
        used: &mut BTreeMap<String, String>,
    ) -> Result<(Op, Option<String>), Diagnostic> {
        let chown = expander.maybe(chown, &self.env, &self.args, used)?;
        let chmod = expander.maybe(chmod, &self.env, &self.args, used)?;
        let workdir = &self.config.config.working_dir;
        let op = lower::copy(ExpandedCopy { kind, files, from, chown, chmod, workdir }, expander.span)?;
        let inline_names: Vec<String> = files.contents.iter().map(|c| c.path.clone()).collect();
        let shown = history::copy(kind.instruction(), &files.sources, &inline_names, &files.dest);
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
