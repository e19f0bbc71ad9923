//! Plan: typed instructions, build args, the target and the base images'
//! configs → a graph of stages made of plan-owned [`Op`]s. Pure: no I/O.
//!
//! - [`bases`], the first pass: the global ARGs expanded into every FROM and
//!   every `COPY --from` that names an image, so the caller knows which
//!   images to fetch.
//! - [`plan`], the second pass: each stage walked with BuildKit's ARG/ENV
//!   scoping, ONBUILD triggers injected, words expanded, each step lowered to
//!   an [`Op`] (heredocs, shebang scripts, flags and destinations resolved),
//!   its history text written and the build args it used recorded; config
//!   changes applied; the stages the target needs ordered as a petgraph DAG.
//! - [`config`]: what config-only instructions change (also used by
//!   `hoist import --change`).
//! - Errors are [`Diagnostic`]s carrying the instruction's span.
//!
//! Nothing after this stage knows Dockerfile syntax: `solve` executes ops.

pub mod config;
mod history;
mod lower;
mod ops;
mod scope;
mod stage;

pub use ops::{
    ConfigChange, CopyFrom, CopyKind, CopyOp, InlineFile, InlineScript, Network, Op, RunOp, WorkdirOp,
};
pub use scope::PROXY_ARGS;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::diagnostic::{Diagnostic, Span};
use crate::dockerfile::instructions::{Command, Instruction};
use crate::dockerfile::shell::ShellLexer;
use crate::image::config::ImageConfig;
pub use crate::image::manifest::Platform;
use scope::GlobalArgs;
use stage::{StageContext, StageEnd, plan_stage};

/// What the user asked for besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// `--build-arg K=V`; a `--build-arg K` without value is resolved by the
    /// caller from its environment (absent there: not passed at all).
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build, by name (lower case).
    pub target: Option<String>,
    /// The platform built for (`TARGETPLATFORM`).
    pub platform: Platform,
    /// The platform building (`BUILDPLATFORM`).
    pub build_platform: Platform,
    /// `--network`: what `RUN` gets when it does not say.
    pub network: Network,
}

impl Default for PlanRequest {
    fn default() -> Self {
        PlanRequest {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            build_platform: Platform::host(),
            network: Network::Host,
        }
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// Nothing.
    Scratch,
    /// An image reference as written after expansion (`alpine:3`).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// The PATH BuildKit sets when a base image has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    /// The stage's position in the file.
    pub index: usize,
    /// `AS name`, lower case.
    pub name: Option<String>,
    /// What it builds on.
    pub base: Base,
    /// `FROM --platform`, expanded.
    pub platform: Option<String>,
    /// The FROM line.
    pub span: Span,
}

/// The images a Dockerfile builds on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bases {
    /// Every stage's FROM, expanded.
    pub headers: Vec<StageHeader>,
    /// Images named by `COPY --from` (not stages), with the line naming them.
    pub copy_images: Vec<(String, Span)>,
}

impl Bases {
    /// Every image named, once, with the first line naming it.
    pub fn images(&self) -> Vec<(String, Span)> {
        let mut seen = BTreeSet::new();
        let from = self.headers.iter().filter_map(|h| match &h.base {
            Base::Image(name) => Some((name.clone(), h.span)),
            _ => None,
        });
        from.chain(self.copy_images.iter().cloned()).filter(|(name, _)| seen.insert(name.clone())).collect()
    }
}

/// First pass: every stage's base, and every image a `COPY --from` names.
/// `escape` is the Dockerfile's escape character (its `# escape=`
/// directive), used to expand words.
pub fn bases(instructions: &[Instruction], escape: char, request: &PlanRequest) -> Result<Bases, Diagnostic> {
    let lexer = ShellLexer::new(escape);
    let mut used = BTreeSet::new();
    let globals = GlobalArgs::read(instructions, request, &lexer, &mut used)?;
    let mut headers: Vec<StageHeader> = Vec::new();
    let mut copy_images = Vec::new();
    for (index, (start, end)) in stage_ranges(instructions).into_iter().enumerate() {
        let instruction = &instructions[start];
        let Command::From(from) = &instruction.command else { unreachable!("stage starts with FROM") };
        let expand = |word: &str| {
            lexer
                .process_word(word, &globals.vars)
                .map(|e| e.value)
                .map_err(|e| Diagnostic::at(instruction.span, format!("FROM {word}: {e}")))
        };
        let image = expand(&from.image)?;
        if image.is_empty() {
            return Err(Diagnostic::at(
                instruction.span,
                format!("FROM {} expands to an empty name", from.image),
            )
            .with_hint("give the ARG a default or pass --build-arg"));
        }
        let platform = from.platform.as_deref().map(expand).transpose()?;
        let base = if image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if let Some(stage) = stage_by_ref(&headers, &image) {
            Base::Stage(stage)
        } else {
            Base::Image(image)
        };
        if let Some(name) = &from.stage_name
            && headers.iter().any(|h| h.name.as_deref() == Some(name))
        {
            return Err(Diagnostic::at(instruction.span, format!("duplicate stage name {name:?}"))
                .with_hint("every stage needs its own name"));
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
                    copy_images.push((from, later.span));
                }
            }
        }
    }
    if headers.is_empty() {
        return Err(
            Diagnostic::at_line("the Dockerfile has no FROM", 1).with_hint("start the first stage with FROM")
        );
    }
    Ok(Bases { headers, copy_images })
}

fn stage_by_ref(headers: &[StageHeader], reference: &str) -> Option<usize> {
    let lower = reference.to_lowercase();
    headers.iter().find(|h| h.name.as_deref() == Some(lower.as_str())).map(|h| h.index)
}

/// One step of a stage, lowered.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The instruction's lines.
    pub span: Span,
    /// The instruction as written, on one line (what progress shows).
    pub text: String,
    /// What to execute.
    pub op: Op,
    /// The history row's `created_by`; `None` when the step writes no row
    /// (ONBUILD).
    pub history: Option<String>,
    /// Build args the step used, with their values: the only build args
    /// that enter its cache key.
    pub build_args: BTreeMap<String, String>,
    /// True for a step injected from the base image's ONBUILD triggers.
    pub from_onbuild: bool,
}

/// A stage to build.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    /// Its FROM.
    pub header: StageHeader,
    /// The base config (before any step): the image's, or empty for scratch.
    pub base_config: ImageConfig,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// The config after every step (metadata only; layers are solve's).
    pub config: ImageConfig,
}

/// The build graph.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every stage of the file.
    pub stages: Vec<StagePlan>,
    /// Stage dependencies: an edge a → b when b builds on or copies from a.
    pub graph: DiGraph<usize, ()>,
    /// The stage built.
    pub target: usize,
    /// The stages the target needs, dependencies first.
    pub order: Vec<usize>,
    /// `--build-arg`s no stage declared.
    pub unused_build_args: Vec<String>,
}

impl Plan {
    /// The stages `stage` builds on or copies from.
    pub fn dependencies(&self, stage: usize) -> Vec<usize> {
        let node = self.graph.node_indices().find(|n| self.graph[*n] == stage).expect("stage in graph");
        self.graph.neighbors_directed(node, petgraph::Direction::Incoming).map(|n| self.graph[n]).collect()
    }
}

/// Second pass: the whole plan. `images` maps an image reference as written
/// in the Dockerfile (after expansion) to its configuration; `escape` is the
/// Dockerfile's escape character.
pub fn plan(
    instructions: &[Instruction],
    escape: char,
    request: &PlanRequest,
    images: &HashMap<String, ImageConfig>,
) -> Result<Plan, Diagnostic> {
    let lexer = ShellLexer::new(escape);
    let mut consumed = BTreeSet::new();
    let globals = GlobalArgs::read(instructions, request, &lexer, &mut consumed)?;
    let headers = bases(instructions, escape, request)?.headers;
    let context = StageContext { request, globals: &globals, headers: &headers, lexer: &lexer };
    let mut stages: Vec<StagePlan> = Vec::with_capacity(headers.len());
    let mut ends: Vec<StageEnd> = Vec::with_capacity(headers.len());
    for (header, (start, end)) in headers.iter().zip(stage_ranges(instructions)) {
        let (base_config, parent) = match &header.base {
            Base::Scratch => (empty_image(&request.platform), None),
            Base::Stage(i) => (stages[*i].config.clone(), Some(&ends[*i])),
            Base::Image(name) => (
                images.get(name).cloned().ok_or_else(|| {
                    Diagnostic::at(header.span, format!("no configuration for base image {name}"))
                        .with_hint("the caller must load every image `bases` returns")
                })?,
                None,
            ),
        };
        let body = &instructions[start + 1..end];
        let (stage, stage_end) =
            plan_stage(header.clone(), base_config, parent, body, &context, &mut consumed)?;
        stages.push(stage);
        ends.push(stage_end);
    }

    let target = match &request.target {
        None => stages.len() - 1,
        Some(name) => stage_by_ref(&headers, name).ok_or_else(|| {
            let names: Vec<String> = headers.iter().filter_map(|h| h.name.clone()).collect();
            Diagnostic::at_line(format!("target stage {name:?} could not be found"), 1).with_hint(
                if names.is_empty() {
                    "the Dockerfile names no stages (FROM image AS name)".to_string()
                } else {
                    format!("stages are: {}", names.join(", "))
                },
            )
        })?,
    };

    let mut graph = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..stages.len()).map(|i| graph.add_node(i)).collect();
    for (i, stage) in stages.iter().enumerate() {
        if let Base::Stage(parent) = stage.header.base {
            graph.update_edge(nodes[parent], nodes[i], ());
        }
        for step in &stage.steps {
            if let Op::Copy(CopyOp { from: CopyFrom::Stage(from), .. }) = step.op {
                graph.update_edge(nodes[from], nodes[i], ());
            }
        }
    }
    let needed = needed_stages(&graph, nodes[target]);
    let order: Vec<usize> = toposort(&graph, None)
        .map_err(|_| Diagnostic::at_line("stages depend on each other in a cycle", 1))?
        .into_iter()
        .map(|n| graph[n])
        .filter(|i| needed.contains(i))
        .collect();
    for &stage in &order {
        check_platform(&stages[stage].header, &request.build_platform)?;
    }
    let unused_build_args = request
        .build_args
        .keys()
        .filter(|k| !consumed.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok(Plan { stages, graph, target, order, unused_build_args })
}

/// Parses, types and plans a Dockerfile's text in one call; every image it
/// builds on must be in `images`.
pub fn plan_text(
    text: &str,
    request: &PlanRequest,
    images: &HashMap<String, ImageConfig>,
) -> Result<Plan, Diagnostic> {
    let file = crate::dockerfile::parse(text)?;
    let typed = crate::dockerfile::instructions::typed(&file)?;
    plan(&typed, file.escape, request, images)
}

/// The config a `FROM scratch` stage starts from: BuildKit's empty image
/// (the platform, a PATH, WorkingDir `/`).
fn empty_image(platform: &Platform) -> ImageConfig {
    let mut config = ImageConfig::new_for_host();
    config.architecture = platform.architecture.clone();
    config.os = platform.os.clone();
    config.variant = platform.variant.clone();
    config.config.working_dir = "/".into();
    config.config.env = vec![format!("PATH={DEFAULT_PATH}")];
    config
}

/// `FROM --platform` of a platform this machine cannot run is refused:
/// hoist does not emulate.
fn check_platform(header: &StageHeader, build_platform: &Platform) -> Result<(), Diagnostic> {
    let Some(platform) = &header.platform else { return Ok(()) };
    let asked = Platform::parse(platform).map_err(|message| Diagnostic::at(header.span, message))?;
    if build_platform.runs(&asked) {
        return Ok(());
    }
    Err(Diagnostic::at(
        header.span,
        format!(
            "FROM --platform={platform}: hoist builds for this machine ({}/{}) and does not emulate others",
            build_platform.os, build_platform.architecture
        ),
    )
    .with_hint("drop --platform, or build on a machine of that platform"))
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

#[cfg(test)]
mod tests;
