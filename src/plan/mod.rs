//! Plan: typed instructions, build args, the target and the base images'
//! configs → a build graph. Pure: no I/O, testable on its own.
//!
//! [`bases`] is the first pass: it expands the global ARGs (those before
//! the first FROM, plus the automatic platform ARGs) into every FROM line
//! and every `COPY --from` that names an image, so the caller knows which
//! images to load. [`plan`] is the second pass: given those images'
//! configurations it walks each stage with BuildKit's ARG/ENV scoping (a
//! global ARG must be redeclared in a stage to be used there; ENV overrides
//! an ARG of the same name; ARGs reach RUN as environment but not the
//! image), injects the base image's ONBUILD triggers, expands the words of
//! the instructions that Docker expands, records which build args each step
//! used (only those enter its cache key), and returns a [`Plan`]: the
//! stages the target needs, in an order that respects their dependencies,
//! as a petgraph DAG.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::dockerfile::ParseError;
use crate::dockerfile::instructions::{self, Command, Instruction, SourcesAndDest};
use crate::dockerfile::parse::Span;
use crate::dockerfile::shell::{Env, ShellLexer};
use crate::image::config::{self, ImageConfig};

/// A platform as `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform.
    pub fn host() -> Platform {
        Platform { os: "linux".into(), architecture: config::host_architecture().into(), variant: None }
    }

    /// Parses `linux/amd64`, `linux/arm/v7`.
    pub fn parse(text: &str) -> Result<Platform, PlanError> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
            }
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(PlanError::new(format!(
                "invalid platform {text:?}: write os/arch[/variant], e.g. linux/amd64"
            ))),
        }
    }

    fn text(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// What the user asked for besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// `--build-arg K=V`; a `--build-arg K` without value is resolved by the
    /// caller from its environment (absent there: not passed at all).
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Platform,
    pub build_platform: Platform,
}

impl Default for PlanRequest {
    fn default() -> Self {
        PlanRequest {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            build_platform: Platform::host(),
        }
    }
}

/// A Dockerfile that cannot be planned; `span` points at the instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    pub message: String,
    pub span: Option<Span>,
    pub hint: Option<String>,
}

impl PlanError {
    fn new(message: impl Into<String>) -> PlanError {
        PlanError { message: message.into(), span: None, hint: None }
    }

    fn at(span: Span, message: impl Into<String>) -> PlanError {
        PlanError { message: message.into(), span: Some(span), hint: None }
    }

    fn hint(mut self, hint: impl Into<String>) -> PlanError {
        self.hint = Some(hint.into());
        self
    }

    /// The same error in the parser's form, to render with the source line.
    pub fn to_parse_error(&self) -> ParseError {
        let span = self.span.unwrap_or(Span { start: 1, end: 1 });
        ParseError {
            message: self.message.clone(),
            line: span.start,
            end_line: span.end,
            column: 1,
            hint: self.hint.clone(),
        }
    }
}

/// What a stage (or a `COPY --from`) starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference as written after expansion (`alpine:3`).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// The PATH BuildKit sets when a base image has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Args proxies may set without a declaration; they are not recorded in
/// the image history unless declared.
pub const PROXY_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The automatic platform ARGs for the global scope.
fn platform_args(request: &PlanRequest) -> Vec<(String, String)> {
    let target = &request.platform;
    let build = &request.build_platform;
    vec![
        ("TARGETPLATFORM".into(), target.text()),
        ("TARGETOS".into(), target.os.clone()),
        ("TARGETARCH".into(), target.architecture.clone()),
        ("TARGETVARIANT".into(), target.variant.clone().unwrap_or_default()),
        ("BUILDPLATFORM".into(), build.text()),
        ("BUILDOS".into(), build.os.clone()),
        ("BUILDARCH".into(), build.architecture.clone()),
        ("BUILDVARIANT".into(), build.variant.clone().unwrap_or_default()),
    ]
}

/// An ordered name → value list where a later assignment replaces an
/// earlier one in place (Docker's env semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(Vec<(String, String)>);

impl Vars {
    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn entries(&self) -> &[(String, String)] {
        &self.0
    }

    fn from_env_list(env: &[String]) -> Vars {
        let mut vars = Vars::default();
        for entry in env {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            vars.set(k, v);
        }
        vars
    }

    /// `KEY=VALUE` strings.
    pub fn to_env_list(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// Expansion environment: ENV first, then ARGs ENV does not shadow.
struct Scope<'a> {
    env: &'a Vars,
    args: &'a Vars,
}

impl Env for Scope<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.env.get(name).or_else(|| self.args.get(name))
    }
}

impl Env for Vars {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// The global scope: ARGs before the first FROM, with build-arg values.
struct GlobalArgs {
    vars: Vars,
    /// Declared names (for redeclaration inside stages).
    declared: BTreeSet<String>,
}

fn global_args(
    instructions: &[Instruction],
    request: &PlanRequest,
    lexer: &ShellLexer,
    used: &mut BTreeSet<String>,
) -> Result<GlobalArgs, PlanError> {
    let mut vars = Vars::default();
    for (k, v) in platform_args(request) {
        vars.set(&k, &v);
    }
    let mut declared = BTreeSet::new();
    for instruction in instructions {
        let Command::Arg { args } = &instruction.command else { break };
        for arg in args {
            declared.insert(arg.name.clone());
            let value = if let Some(given) = request.build_args.get(&arg.name) {
                used.insert(arg.name.clone());
                Some(given.clone())
            } else {
                match &arg.default {
                    Some(default) => Some(
                        lexer
                            .process_word(default, &vars)
                            .map_err(|e| PlanError::at(instruction.span, format!("ARG {}: {e}", arg.name)))?
                            .value,
                    ),
                    None => None,
                }
            };
            if let Some(value) = value {
                vars.set(&arg.name, &value);
            }
        }
    }
    Ok(GlobalArgs { vars, declared })
}

/// Stage boundaries: (index of the FROM instruction, its end).
fn stage_ranges(instructions: &[Instruction]) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.command, Command::From(_)))
        .map(|(n, _)| n)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| (start, starts.get(k + 1).copied().unwrap_or(instructions.len())))
        .collect()
}

/// One stage's FROM, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageHeader {
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    pub platform: Option<String>,
    pub span: Span,
}

/// First pass: every stage's base, and every image a `COPY --from` names.
pub fn bases(
    instructions: &[Instruction],
    request: &PlanRequest,
) -> Result<(Vec<StageHeader>, Vec<String>), PlanError> {
    let lexer = ShellLexer::new('\\');
    let mut used = BTreeSet::new();
    let globals = global_args(instructions, request, &lexer, &mut used)?;
    let mut headers: Vec<StageHeader> = Vec::new();
    let mut copy_images = Vec::new();
    for (index, (start, end)) in stage_ranges(instructions).into_iter().enumerate() {
        let instruction = &instructions[start];
        let Command::From(from) = &instruction.command else { unreachable!("stage starts with FROM") };
        let expand = |word: &str| {
            lexer
                .process_word(word, &globals.vars)
                .map(|e| e.value)
                .map_err(|e| PlanError::at(instruction.span, format!("FROM {word}: {e}")))
        };
        let image = expand(&from.image)?;
        if image.is_empty() {
            return Err(PlanError::at(
                instruction.span,
                format!("FROM {} expands to an empty name", from.image),
            )
            .hint("give the ARG a default or pass --build-arg"));
        }
        let platform = from.platform.as_deref().map(expand).transpose()?;
        let base = if image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if let Some(stage) =
            headers.iter().find(|h| h.name.as_deref() == Some(image.to_lowercase().as_str()))
        {
            Base::Stage(stage.index)
        } else {
            Base::Image(image)
        };
        if let Some(name) = &from.stage_name
            && headers.iter().any(|h| h.name.as_deref() == Some(name))
        {
            return Err(PlanError::at(instruction.span, format!("duplicate stage name {name:?}"))
                .hint("every stage needs its own name"));
        }
        headers.push(StageHeader {
            index,
            name: from.stage_name.clone(),
            base,
            platform,
            span: instruction.span,
        });
        for later in &instructions[start + 1..end] {
            if let Command::Copy(copy) = &later.command
                && let Some(from) = &copy.from
            {
                // Only names that are not stages are images; stage args are
                // not known yet, so only global args expand here.
                let from =
                    lexer.process_word(from, &globals.vars).map(|e| e.value).unwrap_or_else(|_| from.clone());
                if stage_by_ref(&headers, &from).is_none() && from.parse::<usize>().is_err() {
                    copy_images.push(from);
                }
            }
        }
    }
    if headers.is_empty() {
        return Err(PlanError::new("the Dockerfile has no FROM").hint("start the first stage with FROM"));
    }
    Ok((headers, copy_images))
}

fn stage_by_ref(headers: &[StageHeader], reference: &str) -> Option<usize> {
    let lower = reference.to_lowercase();
    headers.iter().find(|h| h.name.as_deref() == Some(lower.as_str())).map(|h| h.index)
}

/// Where a COPY takes its files from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    Context,
    Stage(usize),
    Image(String),
}

/// One step of a stage, expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub span: Span,
    pub original: String,
    pub kind: StepKind,
    /// The image env in force for this step.
    pub env: Vars,
    /// The ARGs in force that ENV does not shadow (RUN sees them as env).
    pub args: Vars,
    /// The stage's ARGs with values, in declaration order, an ENV of the
    /// same name giving the value: what BuildKit shows before a RUN in the
    /// history (`RUN |2 A=1 B=2 …`).
    pub history_args: Vec<(String, String)>,
    /// Build args (values given with --build-arg or declared defaults)
    /// this step used: the only ones that enter its cache key.
    pub used_args: BTreeMap<String, String>,
    pub workdir: String,
    pub user: String,
    pub shell: Vec<String>,
    /// True for a step injected from the base image's ONBUILD triggers.
    pub from_onbuild: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// RUN: the argv (shell prepended for shell form), flags, heredocs.
    Run {
        argv: Vec<String>,
        run: instructions::Run,
    },
    Copy {
        files: SourcesAndDest,
        source: CopySource,
        chown: Option<String>,
        chmod: Option<String>,
        copy: instructions::Copy,
    },
    Add {
        files: SourcesAndDest,
        chown: Option<String>,
        chmod: Option<String>,
        add: instructions::Add,
    },
    /// Any instruction that only changes the image config, expanded.
    Config(Command),
}

/// A stage to build.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    pub header: StageHeader,
    /// The base config (before any step): the image's, or empty for scratch.
    pub base_config: ImageConfig,
    pub steps: Vec<Step>,
    /// The config after every step (metadata only; layers are solve's).
    pub config: ImageConfig,
}

/// The build graph.
#[derive(Debug, Clone)]
pub struct Plan {
    pub stages: Vec<StagePlan>,
    /// Stage dependencies: an edge a → b when b builds on or copies from a.
    pub graph: DiGraph<usize, ()>,
    pub target: usize,
    /// The stages the target needs, dependencies first.
    pub order: Vec<usize>,
    /// `--build-arg`s no stage declared.
    pub unused_build_args: Vec<String>,
}

/// Second pass: the whole plan. `images` maps an image reference as written
/// in the Dockerfile (after expansion) to its configuration.
pub fn plan(
    instructions: &[Instruction],
    request: &PlanRequest,
    images: &HashMap<String, ImageConfig>,
) -> Result<Plan, PlanError> {
    let lexer = ShellLexer::new('\\');
    let mut consumed = BTreeSet::new();
    let globals = global_args(instructions, request, &lexer, &mut consumed)?;
    let (headers, _) = bases(instructions, request)?;
    let mut stages: Vec<StagePlan> = Vec::with_capacity(headers.len());
    for (header, (start, end)) in headers.iter().zip(stage_ranges(instructions)) {
        let base_config = match &header.base {
            Base::Scratch => ImageConfig::new_for_host(),
            Base::Stage(i) => stages[*i].config.clone(),
            Base::Image(name) => images.get(name).cloned().ok_or_else(|| {
                PlanError::at(header.span, format!("no configuration for base image {name}"))
                    .hint("the caller must load every image `bases` returns")
            })?,
        };
        let stage = plan_stage(
            header.clone(),
            base_config,
            &instructions[start + 1..end],
            request,
            &globals,
            &headers,
            &lexer,
            &mut consumed,
        )?;
        stages.push(stage);
    }

    let target = match &request.target {
        None => stages.len() - 1,
        Some(name) => stage_by_ref(&headers, name).ok_or_else(|| {
            let names: Vec<String> = headers.iter().filter_map(|h| h.name.clone()).collect();
            PlanError::new(format!("target stage {name:?} could not be found")).hint(if names.is_empty() {
                "the Dockerfile names no stages (FROM image AS name)".to_string()
            } else {
                format!("stages are: {}", names.join(", "))
            })
        })?,
    };

    let mut graph = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..stages.len()).map(|i| graph.add_node(i)).collect();
    for (i, stage) in stages.iter().enumerate() {
        if let Base::Stage(parent) = stage.header.base {
            graph.update_edge(nodes[parent], nodes[i], ());
        }
        for step in &stage.steps {
            if let StepKind::Copy { source: CopySource::Stage(from), .. } = step.kind {
                graph.update_edge(nodes[from], nodes[i], ());
            }
        }
    }
    let needed = needed_stages(&graph, nodes[target]);
    let order: Vec<usize> = toposort(&graph, None)
        .map_err(|_| PlanError::new("stages depend on each other in a cycle"))?
        .into_iter()
        .map(|n| graph[n])
        .filter(|i| needed.contains(i))
        .collect();
    let unused_build_args = request
        .build_args
        .keys()
        .filter(|k| !consumed.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok(Plan { stages, graph, target, order, unused_build_args })
}

fn needed_stages(graph: &DiGraph<usize, ()>, target: NodeIndex) -> BTreeSet<usize> {
    let mut needed = BTreeSet::new();
    let mut stack = vec![target];
    while let Some(node) = stack.pop() {
        if needed.insert(graph[node]) {
            stack.extend(graph.neighbors_directed(node, petgraph::Direction::Incoming));
        }
    }
    needed
}

/// Expands one word, recording which build args it used.
struct Expander<'a> {
    lexer: &'a ShellLexer,
    span: Span,
}

impl Expander<'_> {
    fn word(
        &self,
        word: &str,
        env: &Vars,
        args: &Vars,
        used: &mut BTreeMap<String, String>,
    ) -> Result<String, PlanError> {
        let scope = Scope { env, args };
        let expansion = self
            .lexer
            .process_word(word, &scope)
            .map_err(|e| PlanError::at(self.span, format!("{word}: {e}")))?;
        record_used(&expansion.used, env, args, used);
        Ok(expansion.value)
    }

    fn words(
        &self,
        word: &str,
        env: &Vars,
        args: &Vars,
        used: &mut BTreeMap<String, String>,
    ) -> Result<Vec<String>, PlanError> {
        let scope = Scope { env, args };
        let expansion = self
            .lexer
            .process_words(word, &scope)
            .map_err(|e| PlanError::at(self.span, format!("{word}: {e}")))?;
        record_used(&expansion.used, env, args, used);
        Ok(expansion.words)
    }
}

fn record_used(names: &BTreeSet<String>, env: &Vars, args: &Vars, used: &mut BTreeMap<String, String>) {
    for name in names {
        if env.get(name).is_none()
            && let Some(value) = args.get(name)
        {
            used.insert(name.clone(), value.to_string());
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_stage(
    header: StageHeader,
    base_config: ImageConfig,
    body: &[Instruction],
    request: &PlanRequest,
    globals: &GlobalArgs,
    headers: &[StageHeader],
    lexer: &ShellLexer,
    consumed: &mut BTreeSet<String>,
) -> Result<StagePlan, PlanError> {
    let mut config = base_config.clone();
    // BuildKit gives a stage whose base sets no PATH the default one, in
    // the image config as well as for RUN.
    if !matches!(header.base, Base::Stage(_)) && !config.config.env.iter().any(|e| e.starts_with("PATH=")) {
        config.config.env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    // ONBUILD triggers of the base run first, then are not inherited.
    let mut triggers: Vec<Instruction> = Vec::new();
    for expression in std::mem::take(&mut config.config.on_build) {
        let file = crate::dockerfile::parse(&format!("FROM scratch\n{expression}\n")).map_err(|e| {
            PlanError::at(
                header.span,
                format!("ONBUILD trigger {expression:?} of the base image: {}", e.message),
            )
        })?;
        let typed = instructions::typed(&file).map_err(|e| {
            PlanError::at(
                header.span,
                format!("ONBUILD trigger {expression:?} of the base image: {}", e.message),
            )
        })?;
        for mut instruction in typed.into_iter().skip(1) {
            instruction.span = header.span;
            triggers.push(instruction);
        }
    }
    let mut env = Vars::from_env_list(&config.config.env);
    let mut args = Vars::default();
    let mut steps = Vec::new();
    let all: Vec<(&Instruction, bool)> =
        triggers.iter().map(|i| (i, true)).chain(body.iter().map(|i| (i, false))).collect();
    for (instruction, from_onbuild) in all {
        let expander = Expander { lexer, span: instruction.span };
        let mut used = BTreeMap::new();
        let kind = match &instruction.command {
            Command::Arg { args: decls } => {
                let mut shown = Vec::with_capacity(decls.len());
                for decl in decls {
                    let value = if let Some(given) = request.build_args.get(&decl.name) {
                        consumed.insert(decl.name.clone());
                        Some(given.clone())
                    } else if let Some(default) = &decl.default {
                        Some(expander.word(default, &env, &args, &mut used)?)
                    } else if globals.declared.contains(&decl.name) || is_platform_arg(&decl.name) {
                        globals.vars.get(&decl.name).map(str::to_string)
                    } else {
                        None
                    };
                    match value {
                        Some(value) => args.set(&decl.name, &value),
                        // Declared without any value: expands to empty and
                        // is not in RUN's environment.
                        None => args.remove(&decl.name),
                    }
                    // History shows the declaration, its default expanded.
                    let default = decl
                        .default
                        .as_deref()
                        .map(|d| expander.word(d, &env, &args, &mut used))
                        .transpose()?;
                    shown.push(instructions::ArgDecl { name: decl.name.clone(), default });
                }
                StepKind::Config(Command::Arg { args: shown })
            }
            Command::Env { pairs } => {
                let mut expanded = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let value = expander.word(&pair.value, &env, &args, &mut used)?;
                    let key = expander.word(&pair.key, &env, &args, &mut used)?;
                    expanded.push(instructions::KeyValue { key: key.clone(), value: value.clone() });
                }
                // All pairs of one ENV line see the env from before the line.
                for pair in &expanded {
                    env.set(&pair.key, &pair.value);
                    config::set_env(&mut config.config.env, &pair.key, &pair.value);
                }
                StepKind::Config(Command::Env { pairs: expanded })
            }
            Command::Run(run) => {
                let mut argv = run.command.args.clone();
                if run.command.prepend_shell {
                    let shell = if config.config.shell.is_empty() {
                        vec!["/bin/sh".to_string(), "-c".to_string()]
                    } else {
                        config.config.shell.clone()
                    };
                    argv = shell.into_iter().chain(argv).collect();
                }
                // The shell expands RUN; the build args it can see are what
                // its cache key depends on.
                for (k, v) in args.entries() {
                    if env.get(k).is_none() {
                        used.insert(k.clone(), v.clone());
                    }
                }
                let mut run = run.clone();
                run.mounts = run
                    .mounts
                    .iter()
                    .map(|m| expander.word(m, &env, &args, &mut used))
                    .collect::<Result<_, _>>()?;
                StepKind::Run { argv, run }
            }
            Command::Copy(copy) => {
                let files = expand_files(&expander, &copy.files, &env, &args, &mut used)?;
                let chown =
                    copy.chown.as_deref().map(|w| expander.word(w, &env, &args, &mut used)).transpose()?;
                let chmod =
                    copy.chmod.as_deref().map(|w| expander.word(w, &env, &args, &mut used)).transpose()?;
                let source = match &copy.from {
                    None => CopySource::Context,
                    Some(from) => {
                        let from = expander.word(from, &env, &args, &mut used)?;
                        copy_source(&from, headers, header.index, instruction.span)?
                    }
                };
                StepKind::Copy { files, source, chown, chmod, copy: copy.clone() }
            }
            Command::Add(add) => {
                let files = expand_files(&expander, &add.files, &env, &args, &mut used)?;
                let chown =
                    add.chown.as_deref().map(|w| expander.word(w, &env, &args, &mut used)).transpose()?;
                let chmod =
                    add.chmod.as_deref().map(|w| expander.word(w, &env, &args, &mut used)).transpose()?;
                StepKind::Add { files, chown, chmod, add: add.clone() }
            }
            Command::Workdir { path } => {
                let path = expander.word(path, &env, &args, &mut used)?;
                let command = Command::Workdir { path };
                apply(&mut config, &command, instruction.span)?;
                StepKind::Config(command)
            }
            Command::User { user } => {
                let command = Command::User { user: expander.word(user, &env, &args, &mut used)? };
                apply(&mut config, &command, instruction.span)?;
                StepKind::Config(command)
            }
            Command::Label { pairs } => {
                let mut expanded = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    expanded.push(instructions::KeyValue {
                        key: expander.word(&pair.key, &env, &args, &mut used)?,
                        value: expander.word(&pair.value, &env, &args, &mut used)?,
                    });
                }
                let command = Command::Label { pairs: expanded };
                apply(&mut config, &command, instruction.span)?;
                StepKind::Config(command)
            }
            Command::Expose { ports } => {
                let mut expanded = Vec::new();
                for port in ports {
                    expanded.extend(expander.words(port, &env, &args, &mut used)?);
                }
                let command = Command::Expose { ports: expanded };
                apply(&mut config, &command, instruction.span)?;
                StepKind::Config(command)
            }
            Command::Volume { paths } => {
                let mut expanded = Vec::new();
                for path in paths {
                    expanded.extend(expander.words(path, &env, &args, &mut used)?);
                }
                let command = Command::Volume { paths: expanded };
                apply(&mut config, &command, instruction.span)?;
                StepKind::Config(command)
            }
            Command::StopSignal { signal } => {
                let command = Command::StopSignal { signal: expander.word(signal, &env, &args, &mut used)? };
                apply(&mut config, &command, instruction.span)?;
                StepKind::Config(command)
            }
            Command::From(_) => unreachable!("a stage body has no FROM"),
            other => {
                apply(&mut config, other, instruction.span)?;
                StepKind::Config(other.clone())
            }
        };
        for name in used.keys() {
            consumed.insert(name.clone());
        }
        steps.push(Step {
            span: instruction.span,
            original: instruction.original.clone(),
            kind,
            env: env.clone(),
            args: with_proxy_args(visible_args(&args, &env), request, &env),
            history_args: args
                .entries()
                .iter()
                .map(|(k, v)| (k.clone(), env.get(k).unwrap_or(v).to_string()))
                .collect(),
            used_args: used,
            workdir: config.config.working_dir.clone(),
            user: config.config.user.clone(),
            shell: config.config.shell.clone(),
            from_onbuild,
        });
    }
    Ok(StagePlan { header, base_config, steps, config })
}

fn is_platform_arg(name: &str) -> bool {
    name.starts_with("TARGET") || name.starts_with("BUILD") && !name.starts_with("BUILDKIT")
}

/// The predefined proxy args given with `--build-arg` reach RUN without an
/// ARG instruction (and, undeclared, stay out of the history).
fn with_proxy_args(mut visible: Vars, request: &PlanRequest, env: &Vars) -> Vars {
    for name in PROXY_ARGS {
        if let Some(value) = request.build_args.get(name)
            && visible.get(name).is_none()
            && env.get(name).is_none()
        {
            visible.set(name, value);
        }
    }
    visible
}

fn visible_args(args: &Vars, env: &Vars) -> Vars {
    Vars(args.0.iter().filter(|(k, _)| env.get(k).is_none()).cloned().collect())
}

fn apply(config: &mut ImageConfig, command: &Command, span: Span) -> Result<(), PlanError> {
    config.apply(command).map_err(|e| PlanError::at(span, e.0))
}

fn expand_files(
    expander: &Expander<'_>,
    files: &SourcesAndDest,
    env: &Vars,
    args: &Vars,
    used: &mut BTreeMap<String, String>,
) -> Result<SourcesAndDest, PlanError> {
    let mut out = files.clone();
    out.sources =
        files.sources.iter().map(|s| expander.word(s, env, args, used)).collect::<Result<_, _>>()?;
    out.dest = expander.word(&files.dest, env, args, used)?;
    for content in &mut out.contents {
        if content.expand {
            content.data =
                expander.word(&content.data, env, args, used).unwrap_or_else(|_| content.data.clone());
        }
    }
    Ok(out)
}

fn copy_source(
    from: &str,
    headers: &[StageHeader],
    current: usize,
    span: Span,
) -> Result<CopySource, PlanError> {
    if let Ok(index) = from.parse::<usize>() {
        if index >= current {
            return Err(PlanError::at(
                span,
                format!("COPY --from={index} refers to a stage that is not before this one"),
            )
            .hint("--from takes an earlier stage's name or index, or an image"));
        }
        return Ok(CopySource::Stage(index));
    }
    match stage_by_ref(headers, from) {
        Some(index) if index < current => Ok(CopySource::Stage(index)),
        Some(_) => {
            Err(PlanError::at(span, format!("COPY --from={from} refers to this stage or a later one")))
        }
        None => Ok(CopySource::Image(from.to_string())),
    }
}

#[cfg(test)]
mod tests;
