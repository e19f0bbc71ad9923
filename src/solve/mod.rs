//! Solve: runs a [`Plan`]. Stages the target needs run on a rayon pool as
//! soon as the stages they build on or copy from are done (`jobs` bounds
//! how many at once); the steps of a stage run in order. Every step has a
//! cache key, `blake3(parent key ‖ canonical step ‖ inputs)`: the base
//! image's manifest digest for FROM, the effective argv, env (build args
//! only where the step sees them), user, workdir and network for RUN, the
//! content digest of exactly the selected files plus destination, owner and
//! mode for COPY and ADD. A key found in the [`CacheIndex`] reuses its layer
//! without executing anything; otherwise RUN runs in a [`sandbox`] on a
//! [`snapshot`] working root whose changes become the layer, and COPY, ADD
//! and WORKDIR write their layer straight from their sources
//! ([`copy::CopyPlan`]). The result is an image in the store, its config
//! and history written as BuildKit writes them. A failed step cancels the
//! others (running sandboxes are killed) and is reported with its line,
//! instruction, exit code and the tail of its output.
//!
//! [`sandbox`]: crate::sandbox
//! [`snapshot`]: crate::snapshot

pub mod cache;
pub mod copy;
pub mod export;
pub mod history;
pub mod user;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::context::Context;
use crate::dockerfile::instructions::Command;
use crate::dockerfile::parse::Span;
use crate::image::config::{History, ImageConfig, rfc3339};
use crate::layer::{Compression, Digest, LayerSummary};
use crate::plan::{Base, CopySource, DEFAULT_PATH, Plan, StepKind};
use crate::progress::{Event, Progress, Stream};
use crate::sandbox::{self, Network, Output, RootFs, SandboxSpec};
use crate::snapshot::{LayerBlob, MergedView, RootDescription, Snapshots, components};
use crate::store::{Image, Store, StoreError};

use cache::{CacheIndex, CacheRecord, CachedLayer};
use copy::{CopyPlan, InlineFile, Source, SourceEntry};

/// How many lines of a failed step's output the error repeats.
const ERROR_TAIL_LINES: usize = 10;

/// Everything a build needs besides the plan.
pub struct SolveOptions<'a> {
    pub store: &'a Store,
    /// The build context directory (already extracted if it came as a tar).
    pub context_dir: PathBuf,
    /// The Dockerfile's path, for `<Dockerfile>.dockerignore`.
    pub dockerfile_path: PathBuf,
    pub no_cache: bool,
    /// RUN's network when the step does not say (`--network`).
    pub network: Network,
    pub jobs: usize,
    pub progress: &'a dyn Progress,
    /// Set to stop the build; running steps are killed.
    pub cancel: Arc<AtomicBool>,
}

/// A layer of a built stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    pub digest: Digest,
    pub size: u64,
}

/// A built stage: its layers, config (with history and diff IDs) and key.
#[derive(Debug, Clone)]
pub struct BuiltStage {
    pub layers: Vec<BuiltLayer>,
    pub config: ImageConfig,
    pub key: blake3::Hash,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct Solved {
    pub target: BuiltStage,
    /// Steps that ran, and steps found in the cache.
    pub executed: usize,
    pub cached: usize,
    /// Context files read to digest them (a no-op rebuild reads none).
    pub context_files_hashed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    #[error("{message}")]
    Step { span: Span, instruction: String, message: String, hint: Option<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
    #[error("the build was cancelled")]
    Cancelled,
}

impl SolveError {
    fn at(span: Span, instruction: &str, message: impl Into<String>) -> SolveError {
        SolveError::Step { span, instruction: instruction.to_string(), message: message.into(), hint: None }
    }
}

fn now_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Shared state of one build.
struct Build<'a> {
    options: &'a SolveOptions<'a>,
    plan: &'a Plan,
    /// Opened when a step first needs a filesystem (a fully cached build
    /// never does, and skips the snapshotter probe).
    snapshots: std::sync::OnceLock<Snapshots>,
    /// How ADD extracts a local archive's owners: kept (rootless, within
    /// the subordinate ids, since the copy runs as the namespace's root).
    archive_ownership: crate::layer::Ownership,
    cache: CacheIndex,
    /// Opened on first use. Read without a lock once set: a COPY forked
    /// into the user-namespace helper must not wait on a lock another
    /// thread held at the fork.
    context: std::sync::OnceLock<Arc<Context>>,
    context_opening: Mutex<()>,
    /// Progress ids: the first id of each stage (its FROM line).
    first_id: Vec<usize>,
    executed: AtomicUsize,
    cached: AtomicUsize,
}

/// Runs `plan`; returns the target stage.
pub fn solve(plan: &Plan, options: &SolveOptions<'_>) -> Result<Solved, SolveError> {
    let cache = CacheIndex::open(options.store)?;
    let mut first_id = vec![0; plan.stages.len()];
    let mut next = 1;
    for &stage in &plan.order {
        first_id[stage] = next;
        next += 1 + plan.stages[stage].steps.len();
    }
    let build = Build {
        options,
        plan,
        snapshots: std::sync::OnceLock::new(),
        cache,
        context: std::sync::OnceLock::new(),
        context_opening: Mutex::new(()),
        first_id,
        executed: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        archive_ownership: if sandbox::rootless() {
            crate::snapshot::namespace_ownership()
        } else {
            crate::layer::Ownership::Preserve
        },
    };
    let results = build.run_stages()?;
    let target = results
        .get(&plan.target)
        .cloned()
        .ok_or_else(|| SolveError::Other("target stage not built".into()))?;
    let context = build.context.get().cloned();
    let context_files_hashed = match context {
        Some(context) => {
            context.save_cache().map_err(|e| SolveError::Other(e.to_string()))?;
            context.stats().files_hashed
        }
        None => 0,
    };
    Ok(Solved {
        target,
        executed: build.executed.load(Ordering::Relaxed),
        cached: build.cached.load(Ordering::Relaxed),
        context_files_hashed,
    })
}

impl Build<'_> {
    /// Schedules the stages: each starts once its dependencies are built.
    fn run_stages(&self) -> Result<HashMap<usize, BuiltStage>, SolveError> {
        let plan = self.plan;
        let pool = rayon::ThreadPoolBuilder::new()
            // Work inside a stage (the context walk, digests) runs on this
            // pool too, so it has a thread per CPU whatever `jobs` is; `jobs`
            // bounds how many stages run, below.
            .num_threads(
                self.options
                    .jobs
                    .clamp(1, plan.order.len().max(1))
                    .max(std::thread::available_parallelism().map_or(1, |n| n.get())),
            )
            .build()
            .map_err(|e| SolveError::Other(format!("cannot start the build threads: {e}")))?;
        let mut deps: HashMap<usize, Vec<usize>> = HashMap::new();
        for &stage in &plan.order {
            let node = plan.graph.node_indices().find(|n| plan.graph[*n] == stage).expect("stage in graph");
            let parents = plan
                .graph
                .neighbors_directed(node, petgraph::Direction::Incoming)
                .map(|n| plan.graph[n])
                .collect();
            deps.insert(stage, parents);
        }
        let results: Mutex<HashMap<usize, BuiltStage>> = Mutex::new(HashMap::new());
        let mut pending: VecDeque<usize> = plan.order.iter().copied().collect();
        let mut running = 0usize;
        let mut failure: Option<SolveError> = None;
        let (done_tx, done_rx) = mpsc::channel::<(usize, Result<BuiltStage, SolveError>)>();
        pool.in_place_scope(|scope| {
            loop {
                if failure.is_none() {
                    let finished: Vec<usize> = results.lock().unwrap().keys().copied().collect();
                    let ready: Vec<usize> = pending
                        .iter()
                        .copied()
                        .filter(|s| deps[s].iter().all(|d| finished.contains(d)))
                        .collect();
                    for stage in ready {
                        if running >= self.options.jobs.max(1) {
                            break;
                        }
                        pending.retain(|s| *s != stage);
                        running += 1;
                        let inputs: HashMap<usize, BuiltStage> = {
                            let done = results.lock().unwrap();
                            deps[&stage].iter().map(|d| (*d, done[d].clone())).collect()
                        };
                        let tx = done_tx.clone();
                        scope.spawn(move |_| {
                            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                self.build_stage(stage, &inputs)
                            }))
                            .unwrap_or_else(|_| Err(SolveError::Other(format!("stage {stage} panicked"))));
                            let _ = tx.send((stage, result));
                        });
                    }
                }
                if running == 0 {
                    break;
                }
                let (stage, result) = done_rx.recv().expect("a stage reports");
                running -= 1;
                match result {
                    Ok(built) => {
                        results.lock().unwrap().insert(stage, built);
                    }
                    Err(e) => {
                        if failure.is_none() {
                            // Stop the others: running sandboxes see the flag.
                            self.options.cancel.store(true, Ordering::SeqCst);
                            failure = Some(e);
                        }
                    }
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if self.options.cancel.load(Ordering::SeqCst) {
            return Err(SolveError::Cancelled);
        }
        Ok(results.into_inner().unwrap())
    }

    fn snapshots(&self) -> Result<&Snapshots, SolveError> {
        if let Some(snapshots) = self.snapshots.get() {
            return Ok(snapshots);
        }
        let snapshots = Snapshots::open(self.options.store).map_err(|e| SolveError::Other(e.to_string()))?;
        Ok(self.snapshots.get_or_init(|| snapshots))
    }

    fn stage_label(&self, stage: usize) -> String {
        let plan = &self.plan.stages[stage];
        plan.header.name.clone().unwrap_or_else(|| format!("stage-{stage}"))
    }

    fn context(&self) -> Result<Arc<Context>, SolveError> {
        if let Some(context) = self.context.get() {
            return Ok(context.clone());
        }
        let _opening = self.context_opening.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(context) = self.context.get() {
            return Ok(context.clone());
        }
        let cache_dir = self.options.store.root().join("cache/context");
        let context =
            Context::open(&self.options.context_dir, &self.options.dockerfile_path, Some(&cache_dir))
                .map_err(|e| SolveError::Other(e.to_string()))?;
        Ok(self.context.get_or_init(|| Arc::new(context)).clone())
    }

    fn load_image(&self, name: &str, span: Span, instruction: &str) -> Result<Image, SolveError> {
        let store = self.options.store;
        let summary = store.resolve(name).map_err(|e| {
            SolveError::Step {
                span,
                instruction: instruction.to_string(),
                message: format!("{e}"),
                hint: Some(format!(
                    "hoist builds from images in its store: `hoist load`, `hoist import` or `hoist pull` {name} first"
                )),
            }
        })?;
        Ok(summary.image)
    }

    fn layer_blobs(layers: &[BuiltLayer]) -> Vec<LayerBlob> {
        layers.iter().map(|l| LayerBlob { digest: l.digest, diff_id: l.digest }).collect()
    }

    fn view_of(&self, layers: &[BuiltLayer]) -> Result<MergedView, SolveError> {
        let dirs = self
            .snapshots()?
            .unpack(&Self::layer_blobs(layers))
            .map_err(|e| SolveError::Other(format!("cannot unpack the layers: {e}")))?;
        Ok(MergedView::new(&dirs))
    }

    fn build_stage(
        &self,
        index: usize,
        inputs: &HashMap<usize, BuiltStage>,
    ) -> Result<BuiltStage, SolveError> {
        let stage = &self.plan.stages[index];
        let progress = self.options.progress;
        let total = stage.steps.len() + 1;
        let label = self.stage_label(index);
        let from_id = self.first_id[index];
        let from_text = format!(
            "[{label} 1/{total}] FROM {}",
            match &stage.header.base {
                Base::Scratch => "scratch".to_string(),
                Base::Image(name) => name.clone(),
                Base::Stage(i) => self.stage_label(*i),
            }
        );
        progress.event(Event::Started { id: from_id, name: from_text });
        let started = Instant::now();
        if let Some(platform) = &stage.header.platform {
            let host = crate::plan::Platform::host();
            let asked = crate::plan::Platform::parse(platform)
                .map_err(|e| SolveError::at(stage.header.span, "FROM", e.message))?;
            if asked.os != host.os || asked.architecture != host.architecture {
                return Err(SolveError::Step {
                    span: stage.header.span,
                    instruction: "FROM".into(),
                    message: format!(
                        "--platform={platform}: hoist builds for this machine ({}/{}) and does not emulate others",
                        host.os, host.architecture
                    ),
                    hint: Some("drop --platform, or build on a machine of that platform".into()),
                });
            }
        }
        let (mut layers, mut config, mut key) = match &stage.header.base {
            Base::Scratch => {
                let mut hasher = blake3::Hasher::new();
                hasher.update(b"scratch\0");
                hasher.update(stage.base_config.architecture.as_bytes());
                (Vec::new(), stage.base_config.clone(), hasher.finalize())
            }
            Base::Stage(parent) => {
                let built = inputs[parent].clone();
                (built.layers, built.config, built.key)
            }
            Base::Image(name) => {
                let image = self.load_image(name, stage.header.span, "FROM")?;
                let layers: Vec<BuiltLayer> =
                    image.layers().into_iter().map(|(digest, size)| BuiltLayer { digest, size }).collect();
                let mut hasher = blake3::Hasher::new();
                hasher.update(b"image\0");
                hasher.update(image.manifest_digest.to_string().as_bytes());
                // Layers are stored uncompressed: the diff IDs are the digests.
                let mut config = image.config.clone();
                config.rootfs.diff_ids = layers.iter().map(|l| l.digest.to_string()).collect();
                (layers, config, hasher.finalize())
            }
        };
        progress.event(Event::Done { id: from_id, seconds: started.elapsed().as_secs_f64() });
        // Metadata comes from the plan; layers and history from the steps.
        let history_base = config.history.clone();
        let diff_ids_base = config.rootfs.diff_ids.clone();
        config = ImageConfig {
            history: history_base,
            rootfs: crate::image::config::RootFs { kind: "layers".into(), diff_ids: diff_ids_base },
            ..stage.config.clone()
        };
        let mut last_created: Option<String> = None;

        for (n, step) in stage.steps.iter().enumerate() {
            if self.options.cancel.load(Ordering::SeqCst) {
                return Err(SolveError::Cancelled);
            }
            let id = from_id + 1 + n;
            let name = format!("[{label} {}/{total}] {}", n + 2, one_line(&step.original));
            let started = Instant::now();
            let mut hasher = blake3::Hasher::new();
            hasher.update(key.as_bytes());
            let canonical = Self::refuse_unsupported(step)
                .and_then(|()| self.canonical(step, inputs))
                .inspect_err(|e| {
                    progress.event(Event::Started { id, name: name.clone() });
                    progress.event(Event::Failed { id, seconds: 0.0, message: e.to_string() });
                })?;
            hasher.update(canonical.as_bytes());
            key = hasher.finalize();
            let makes_layer =
                !matches!(&step.kind, StepKind::Config(c) if !matches!(c, Command::Workdir { .. }));
            let cached = if self.options.no_cache && makes_layer { None } else { self.cache.get(&key) };
            let record = match cached {
                Some(record) => {
                    if makes_layer {
                        progress.event(Event::Started { id, name });
                        progress.event(Event::Cached { id });
                        self.cached.fetch_add(1, Ordering::Relaxed);
                    }
                    record
                }
                None => {
                    let created = rfc3339(SystemTime::now());
                    let layer = if makes_layer {
                        progress.event(Event::Started { id, name });
                        let result = self.execute(id, step, &layers, inputs);
                        match result {
                            Ok(layer) => {
                                progress.event(Event::Done { id, seconds: started.elapsed().as_secs_f64() });
                                self.executed.fetch_add(1, Ordering::Relaxed);
                                layer
                            }
                            Err(e) => {
                                let message = match &e {
                                    SolveError::Step { message, .. } => message.clone(),
                                    other => other.to_string(),
                                };
                                progress.event(Event::Failed {
                                    id,
                                    seconds: started.elapsed().as_secs_f64(),
                                    message,
                                });
                                return Err(e);
                            }
                        }
                    } else {
                        None
                    };
                    let record = CacheRecord {
                        layer: layer.map(|l| CachedLayer { digest: l.digest.to_string(), size: l.size }),
                        created,
                    };
                    self.cache.put(&key, &record)?;
                    record
                }
            };
            let empty_layer = record.layer.is_none();
            if let Some(layer) = &record.layer {
                let digest: Digest = layer.digest.parse().map_err(|e| SolveError::Other(format!("{e}")))?;
                layers.push(BuiltLayer { digest, size: layer.size });
                config.rootfs.diff_ids.push(layer.digest.clone());
            }
            if history::records_history(step) {
                config.history.push(History {
                    created: Some(record.created.clone()),
                    created_by: Some(history::created_by(step)),
                    author: None,
                    comment: Some("buildkit.dockerfile.v0".into()),
                    empty_layer,
                });
            }
            last_created = Some(record.created);
        }
        config.created = last_created.or_else(|| config.created.clone());
        Ok(BuiltStage { layers, config, key })
    }

    /// Flags this version does not implement are refused, never ignored:
    /// each would change what the step produces.
    fn refuse_unsupported(step: &crate::plan::Step) -> Result<(), SolveError> {
        let refuse = |what: &str, flag: &str| {
            Err(SolveError::Step {
                span: step.span,
                instruction: what.to_string(),
                message: format!("{what} {flag} is not supported by this version of hoist"),
                hint: Some("remove the flag, or build this Dockerfile with docker build for now".into()),
            })
        };
        match &step.kind {
            StepKind::Copy { copy, .. } if copy.parents => refuse("COPY", "--parents"),
            StepKind::Copy { copy, .. } if !copy.exclude.is_empty() => refuse("COPY", "--exclude"),
            StepKind::Add { add, .. } if !add.exclude.is_empty() => refuse("ADD", "--exclude"),
            StepKind::Add { add, .. } if add.checksum.is_some() => refuse("ADD", "--checksum"),
            StepKind::Add { add, .. } if add.keep_git_dir => refuse("ADD", "--keep-git-dir"),
            StepKind::Add { add, .. } if add.unpack.is_some() => refuse("ADD", "--unpack"),
            StepKind::Add { files, .. } if files.sources.iter().any(|s| is_remote(s)) => {
                refuse("ADD", "of a URL or git repository")
            }
            StepKind::Run { run, .. } if !run.mounts.is_empty() => refuse("RUN", "--mount"),
            StepKind::Run { run, .. } if run.security.is_some() => refuse("RUN", "--security"),
            StepKind::Run { run, .. } if !run.devices.is_empty() => refuse("RUN", "--device"),
            _ => Ok(()),
        }
    }

    /// The text a step's cache key is made of, inputs included.
    fn canonical(
        &self,
        step: &crate::plan::Step,
        inputs: &HashMap<usize, BuiltStage>,
    ) -> Result<String, SolveError> {
        let mut text = String::new();
        match &step.kind {
            StepKind::Config(command) => {
                text.push_str(&serde_json::to_string(command).expect("command serialises"));
                text.push_str(&format!("\0user={}", step.user));
            }
            StepKind::Run { argv, run } => {
                text.push_str("RUN\0");
                text.push_str(
                    &serde_json::to_string(&(
                        argv,
                        self.run_env(step),
                        &step.user,
                        &step.workdir,
                        &run.command.files,
                        run.network.as_deref().unwrap_or(match self.options.network {
                            Network::Host => "host",
                            Network::None => "none",
                        }),
                    ))
                    .expect("run serialises"),
                );
            }
            StepKind::Copy { files, source, chown, chmod, .. } => {
                text.push_str("COPY\0");
                text.push_str(
                    &serde_json::to_string(&(files, chown, chmod, &step.workdir)).expect("serialises"),
                );
                match source {
                    CopySource::Context => {
                        if !files.sources.is_empty() {
                            let context = self.context()?;
                            let digest = context_digest(&context, &files.sources)
                                .map_err(|e| SolveError::at(step.span, "COPY", e))?;
                            text.push_str(&format!("\0context={digest}"));
                        }
                    }
                    CopySource::Stage(i) => text.push_str(&format!("\0stage={}", inputs[i].key.to_hex())),
                    CopySource::Image(name) => {
                        let image = self.load_image(name, step.span, "COPY")?;
                        text.push_str(&format!("\0image={}", image.manifest_digest));
                    }
                }
            }
            StepKind::Add { files, chown, chmod, .. } => {
                text.push_str("ADD\0");
                text.push_str(
                    &serde_json::to_string(&(files, chown, chmod, &step.workdir)).expect("serialises"),
                );
                if !files.sources.is_empty() {
                    let context = self.context()?;
                    let digest = context_digest(&context, &files.sources)
                        .map_err(|e| SolveError::at(step.span, "ADD", e))?;
                    text.push_str(&format!("\0context={digest}"));
                }
            }
        }
        Ok(text)
    }

    /// RUN's environment: the image env, the build args it sees, and a PATH.
    fn run_env(&self, step: &crate::plan::Step) -> Vec<String> {
        let mut env = step.env.to_env_list();
        for (k, v) in step.args.entries() {
            if step.env.get(k).is_none() {
                env.push(format!("{k}={v}"));
            }
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        env
    }

    /// Executes a step that makes a layer; `None` when it changed nothing.
    fn execute(
        &self,
        id: usize,
        step: &crate::plan::Step,
        layers: &[BuiltLayer],
        inputs: &HashMap<usize, BuiltStage>,
    ) -> Result<Option<BuiltLayer>, SolveError> {
        match &step.kind {
            StepKind::Run { argv, run } => self.execute_run(id, step, argv, run, layers),
            StepKind::Config(Command::Workdir { .. }) => {
                self.view_of(layers)?;
                let write = |out: &mut dyn std::io::Write| {
                    let fail = |e: copy::CopyError| SolveError::at(step.span, "WORKDIR", e.to_string());
                    let view = self.view_of(layers)?;
                    let owner = self.user_owner(&view, &step.user, step.span)?;
                    let mut plan = CopyPlan::new(&view, owner, None, now_seconds());
                    plan.ensure_dir(&step.workdir).map_err(fail)?;
                    // BuildKit's WORKDIR always makes a layer, carrying the
                    // directory (and its parents) even when it existed.
                    plan.write(out).map_err(fail)
                };
                self.store_layer(step.span, "WORKDIR", write).map(Some)
            }
            StepKind::Copy { files, source, chown, chmod, .. } => {
                let copy = CopyStep {
                    step,
                    files,
                    source,
                    chown: chown.as_deref(),
                    chmod: chmod.as_deref(),
                    is_add: false,
                };
                self.execute_copy(&copy, layers, inputs).map(Some)
            }
            StepKind::Add { files, chown, chmod, .. } => {
                let copy = CopyStep {
                    step,
                    files,
                    source: &CopySource::Context,
                    chown: chown.as_deref(),
                    chmod: chmod.as_deref(),
                    is_add: true,
                };
                self.execute_copy(&copy, layers, inputs).map(Some)
            }
            StepKind::Config(_) => Ok(None),
        }
    }

    /// The owner a WORKDIR made under USER gets.
    fn user_owner(
        &self,
        view: &MergedView,
        user: &str,
        span: Span,
    ) -> Result<Option<(u32, u32)>, SolveError> {
        if user.is_empty() {
            return Ok(None);
        }
        let passwd = view.read_file("/etc/passwd").ok().flatten().unwrap_or_default();
        let group = view.read_file("/etc/group").ok().flatten().unwrap_or_default();
        user::resolve_owner(user, &String::from_utf8_lossy(&passwd), &String::from_utf8_lossy(&group))
            .map(Some)
            .map_err(|e| SolveError::at(span, "WORKDIR", e))
    }

    /// Stores the layer `write` makes from layer dirs (COPY, ADD, WORKDIR).
    /// Rootless, a file may sit in a directory only a subordinate id can
    /// enter, so `write` runs as the user namespace's root, where owners
    /// read as the image's. It runs in a forked child then: the layer dirs
    /// it reads must be unpacked, and the context walked, before the call.
    /// Where no user namespace can be made, the layer dirs hold only the
    /// caller's files, and `write` runs here.
    fn store_layer(
        &self,
        span: Span,
        what: &str,
        write: impl FnOnce(&mut dyn std::io::Write) -> Result<LayerSummary, SolveError>,
    ) -> Result<BuiltLayer, SolveError> {
        let mut blob = self.options.store.blob_writer()?;
        let summary = if sandbox::rootless() && sandbox::namespace_available() {
            copy_as_namespace_root(span, what, &mut blob, write)?
        } else {
            write(&mut blob)?
        };
        let digest = blob.commit(Some(summary.diff_id))?;
        Ok(BuiltLayer { digest, size: summary.uncompressed_size })
    }

    fn execute_copy(
        &self,
        copy: &CopyStep<'_>,
        layers: &[BuiltLayer],
        inputs: &HashMap<usize, BuiltStage>,
    ) -> Result<BuiltLayer, SolveError> {
        let (span, what) = (copy.step.span, copy.what());
        self.view_of(layers)?;
        match copy.source {
            CopySource::Context if !copy.files.sources.is_empty() => drop(self.context()?),
            CopySource::Context => {}
            source => drop(self.view_of(&self.source_layers(source, inputs, span, what)?)?),
        }
        self.store_layer(span, what, |out| self.write_copy(copy, layers, inputs, out))
    }

    /// The layers `COPY --from` reads: a stage's or an image's.
    fn source_layers(
        &self,
        source: &CopySource,
        inputs: &HashMap<usize, BuiltStage>,
        span: Span,
        what: &str,
    ) -> Result<Vec<BuiltLayer>, SolveError> {
        Ok(match source {
            CopySource::Stage(i) => inputs[i].layers.clone(),
            CopySource::Image(name) => self
                .load_image(name, span, what)?
                .layers()
                .into_iter()
                .map(|(digest, size)| BuiltLayer { digest, size })
                .collect(),
            CopySource::Context => Vec::new(),
        })
    }

    /// Writes the layer of a COPY or ADD to `out`.
    fn write_copy(
        &self,
        copy: &CopyStep<'_>,
        layers: &[BuiltLayer],
        inputs: &HashMap<usize, BuiltStage>,
        out: &mut dyn std::io::Write,
    ) -> Result<LayerSummary, SolveError> {
        let CopyStep { step, files, source, chown, chmod, is_add } = *copy;
        let what = copy.what();
        let fail = |message: String| SolveError::at(step.span, what, message);
        let view = self.view_of(layers)?;
        let owner = match chown {
            Some(spec) => {
                let passwd = view.read_file("/etc/passwd").ok().flatten().unwrap_or_default();
                let group = view.read_file("/etc/group").ok().flatten().unwrap_or_default();
                Some(
                    user::resolve_owner(
                        spec,
                        &String::from_utf8_lossy(&passwd),
                        &String::from_utf8_lossy(&group),
                    )
                    .map_err(fail)?,
                )
            }
            None => None,
        };
        let mode = chmod.map(copy::parse_chmod).transpose().map_err(|e| fail(e.to_string()))?;
        let workdir = if step.workdir.is_empty() { "/".to_string() } else { step.workdir.clone() };
        let dest = if files.dest.starts_with('/') {
            files.dest.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), files.dest)
        };
        let dest_is_dir = files.dest.ends_with('/')
            || files.dest == "."
            || files.dest.ends_with("/.")
            || files.sources.len() + files.contents.len() > 1;
        let mut plan = CopyPlan::new(&view, owner, mode, now_seconds());
        let mut temp_dirs = Vec::new();
        match source {
            CopySource::Context => {
                if !files.sources.is_empty() {
                    let context = self.context()?;
                    let sources = context_sources(&context, &files.sources).map_err(fail)?;
                    let many = sources.len() > 1;
                    for source in &sources {
                        if is_add
                            && !source.is_dir()
                            && let Some(dir) =
                                self.unpack_archive(&source.entries[0].fs_path).map_err(fail)?
                        {
                            let extracted = dir_source(dir.path(), "").map_err(fail)?;
                            plan.add_source(&extracted, &dest, true, true)
                                .map_err(|e| fail(e.to_string()))?;
                            temp_dirs.push(dir);
                            continue;
                        }
                        plan.add_source(source, &dest, dest_is_dir || many, false)
                            .map_err(|e| fail(e.to_string()))?;
                    }
                }
            }
            CopySource::Stage(_) | CopySource::Image(_) => {
                let from_layers = self.source_layers(source, inputs, step.span, what)?;
                let from_view = self.view_of(&from_layers)?;
                let mut all = Vec::new();
                for pattern in &files.sources {
                    let found = view_sources(&from_view, pattern).map_err(fail)?;
                    all.extend(found);
                }
                let many = all.len() > 1;
                for source in &all {
                    plan.add_source(source, &dest, dest_is_dir || many, true)
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
        }
        let now = now_seconds();
        for content in &files.contents {
            let file = InlineFile {
                name: content.path.clone(),
                data: content.data.clone().into_bytes(),
                mode: 0o644,
                mtime: now,
            };
            plan.add_inline(&file, &dest, dest_is_dir).map_err(|e| fail(e.to_string()))?;
        }
        let summary = plan.write(out).map_err(|e| fail(e.to_string()));
        drop(temp_dirs);
        summary
    }

    /// ADD of a local tar archive (plain, gzip, bzip2, xz, zstd): extracted
    /// into a temporary directory; `None` when the file is not an archive.
    fn unpack_archive(&self, path: &Path) -> Result<Option<tempfile::TempDir>, String> {
        let Some(reader) = archive_reader(path).map_err(|e| format!("{}: {e}", path.display()))? else {
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix("add-")
            .tempdir_in(self.options.store.root().join("tmp"))
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let options = crate::layer::ExtractOptions {
            ownership: self.archive_ownership.clone(),
            ..crate::layer::ExtractOptions::default()
        };
        crate::layer::extract(reader, dir.path(), &options)
            .map_err(|e| format!("ADD {}: {e}", path.display()))?;
        Ok(Some(dir))
    }

    fn execute_run(
        &self,
        id: usize,
        step: &crate::plan::Step,
        argv: &[String],
        run: &crate::dockerfile::instructions::Run,
        layers: &[BuiltLayer],
    ) -> Result<Option<BuiltLayer>, SolveError> {
        let fail = |message: String| SolveError::at(step.span, "RUN", message);
        let network = match run.network.as_deref() {
            None | Some("default") => self.options.network,
            Some("host") => Network::Host,
            Some("none") => Network::None,
            Some(other) => return Err(fail(format!("RUN --network={other}: use default, none or host"))),
        };
        let working = self
            .snapshots()?
            .prepare(&Self::layer_blobs(layers))
            .map_err(|e| fail(format!("cannot prepare the root filesystem: {e}")))?;
        let rootfs = RootFs::from(working.rootfs());
        let mut argv = heredoc_argv(argv, run);
        // A lone heredoc starting with `#!` is a script in its own language:
        // BuildKit mounts it as a file under /dev/pipes and executes it.
        let mut script_file = None;
        if let Some((name, content)) = shebang_script(&argv, run) {
            let file = tempfile::Builder::new()
                .prefix("heredoc-")
                .tempfile_in(self.options.store.root().join("tmp"))
                .map_err(|e| fail(format!("cannot write the heredoc script: {e}")))?
                // No handle may stay open for writing: exec would fail with
                // ETXTBSY.
                .into_temp_path();
            fs::write(&file, content)
                .and_then(|()| {
                    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                })
                .map_err(|e| fail(format!("cannot write the heredoc script: {e}")))?;
            let target = format!("/dev/pipes/{name}");
            argv = vec![target.clone()];
            script_file = Some((file, target));
        }
        let mut spec = SandboxSpec::new(rootfs, argv.clone());
        if let Some((file, target)) = &script_file {
            spec.mounts.push(sandbox::BindMount {
                source: file.to_path_buf(),
                target: target.clone(),
                readonly: true,
            });
        }
        spec.env = self.run_env(step);
        spec.cwd = if step.workdir.is_empty() { "/".into() } else { step.workdir.clone() };
        spec.user = if step.user.is_empty() { None } else { Some(step.user.clone()) };
        spec.hostname = "buildkitsandbox".into();
        spec.network = network;
        spec.cancel = Some(self.options.cancel.clone());
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
        let progress = self.options.progress;
        let lines = LineSplitter::new(id, tail.clone());
        let lines = Arc::new(Mutex::new(lines));
        let sink = lines.clone();
        // The progress renderer is shared by reference; events go through a
        // channel drained on this thread so the callback stays 'static.
        let (tx, rx) = mpsc::channel::<Event>();
        spec.output = Output::Capture(Box::new(move |stream, bytes| {
            let stream = match stream {
                sandbox::Stream::Stdout => Stream::Stdout,
                sandbox::Stream::Stderr => Stream::Stderr,
            };
            for event in sink.lock().unwrap().push(stream, bytes) {
                let _ = tx.send(event);
            }
        }));
        let outcome = std::thread::scope(|scope| {
            let handle = scope.spawn(move || sandbox::run(spec));
            for event in rx {
                progress.event(event);
            }
            handle.join().expect("sandbox thread")
        });
        for event in lines.lock().unwrap().flush() {
            progress.event(event);
        }
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                let _ = working.release();
                return Err(fail(e.to_string()));
            }
        };
        if outcome.cancelled {
            let _ = working.release();
            return Err(SolveError::Cancelled);
        }
        let failed = match outcome.status {
            sandbox::ExitStatus::Exited(0) if !outcome.timed_out => None,
            sandbox::ExitStatus::Exited(code) => Some(format!("exit code: {code}")),
            sandbox::ExitStatus::Signaled(signal) => Some(format!("killed by signal {signal}")),
        };
        if let Some(status) = failed {
            let _ = working.release();
            let tail: Vec<String> = tail.lock().unwrap().iter().cloned().collect();
            let mut message =
                format!("process \"{}\" did not complete successfully: {status}", argv_text(&argv));
            if !tail.is_empty() {
                message.push_str("\n  last output:\n");
                for line in tail {
                    message.push_str(&format!("    {line}\n"));
                }
            }
            return Err(SolveError::Step { span: step.span, instruction: "RUN".into(), message, hint: None });
        }
        // BuildKit's runc leaves the /dev, /proc and /sys directories it had
        // to create in the layer (empty, 0755); the files bound over
        // /etc/hosts and friends it removes.
        let mut ignore: Vec<PathBuf> = Vec::new();
        for point in &outcome.created_mount_points {
            if ["dev", "proc", "sys"].iter().any(|d| point == Path::new(d)) {
                let dir = working.upper_dir().join(point);
                if let Err(e) = fs::create_dir(&dir)
                    && e.kind() != std::io::ErrorKind::AlreadyExists
                {
                    let _ = working.release();
                    return Err(fail(format!("cannot record {}: {e}", dir.display())));
                }
                let _ = fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755));
            } else {
                ignore.push(point.clone());
            }
        }
        let mut blob = self.options.store.blob_writer()?;
        let summary = working
            .diff(&mut blob, Compression::None, &ignore)
            .map_err(|e| fail(format!("cannot record the changes: {e}")))?;
        let _ = working.release();
        // An empty tar is two zero blocks: the step changed nothing.
        if summary.uncompressed_size <= 1024 {
            return Ok(None);
        }
        let digest = blob.commit(Some(summary.diff_id))?;
        Ok(Some(BuiltLayer { digest, size: summary.uncompressed_size }))
    }
}

/// A COPY or ADD step, as it is executed.
#[derive(Clone, Copy)]
struct CopyStep<'a> {
    step: &'a crate::plan::Step,
    files: &'a crate::dockerfile::instructions::SourcesAndDest,
    source: &'a CopySource,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    is_add: bool,
}

impl CopyStep<'_> {
    fn what(&self) -> &'static str {
        if self.is_add { "ADD" } else { "COPY" }
    }
}

/// Runs `write` (a COPY's layer, written to the pipe it gets) as the root
/// of the rootless user namespace, storing the layer in `blob`; a step's
/// error comes back with its message and hint.
fn copy_as_namespace_root(
    span: Span,
    what: &str,
    blob: &mut impl std::io::Write,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<LayerSummary, SolveError>,
) -> Result<LayerSummary, SolveError> {
    let done = sandbox::as_namespace_root(
        |out| match write(out) {
            Ok(summary) => Ok(summary.to_line().into_bytes()),
            Err(SolveError::Step { message, hint, .. }) => {
                Err(format!("{message}\0{}", hint.unwrap_or_default()))
            }
            Err(other) => Err(other.to_string()),
        },
        |chunk| blob.write_all(chunk),
    );
    match done {
        Ok(Ok(line)) => LayerSummary::from_line(&line, Compression::None)
            .ok_or_else(|| SolveError::at(span, what, "the copy helper's reply is garbled")),
        Ok(Err(text)) => {
            let (message, hint) = text.split_once('\0').unwrap_or((text.as_str(), ""));
            Err(SolveError::Step {
                span,
                instruction: what.to_string(),
                message: message.to_string(),
                hint: (!hint.is_empty()).then(|| hint.to_string()),
            })
        }
        Err(e) => Err(SolveError::at(span, what, format!("cannot read as the user namespace's root: {e}"))),
    }
}

/// What the sandbox mounts for a snapshot's working root: solve is where
/// the two modules meet, so the conversion lives here.
impl From<RootDescription> for RootFs {
    fn from(root: RootDescription) -> RootFs {
        match root {
            RootDescription::Overlay { lower, upper, work } => RootFs::Overlay { lower, upper, work },
            RootDescription::Dir(dir) => RootFs::Dir(dir),
        }
    }
}

/// The heredoc name and body of `RUN <<EOF` whose body starts with `#!`
/// (`argv` is what [`heredoc_argv`] made of it: the shell and the body).
fn shebang_script(argv: &[String], run: &crate::dockerfile::instructions::Run) -> Option<(String, String)> {
    let [heredoc] = run.command.files.as_slice() else { return None };
    let command = run.command.args.last()?;
    let lone = command.trim().starts_with("<<") && !command.trim().contains(' ');
    let body = argv.last()?;
    (run.command.prepend_shell && lone && body.starts_with("#!"))
        .then(|| (heredoc.name.clone(), body.clone()))
}

/// Shell form with a heredoc: BuildKit runs a lone heredoc as the script
/// (`RUN <<EOF`), and otherwise gives the shell the whole text with the
/// heredoc bodies so that it does the redirection itself.
pub(crate) fn heredoc_argv(argv: &[String], run: &crate::dockerfile::instructions::Run) -> Vec<String> {
    let files = &run.command.files;
    if files.is_empty() || !run.command.prepend_shell || argv.is_empty() {
        return argv.to_vec();
    }
    let (shell, command) = argv.split_at(argv.len() - 1);
    let command = &command[0];
    let body = |h: &crate::dockerfile::parse::Heredoc| {
        if h.chomp {
            crate::dockerfile::instructions::strip_leading_tabs(&h.content)
        } else {
            h.content.clone()
        }
    };
    if files.len() == 1 && command.trim().starts_with("<<") && !command.trim().contains(' ') {
        let mut out = shell.to_vec();
        out.push(body(&files[0]));
        return out;
    }
    let mut script = command.clone();
    for h in files {
        script.push('\n');
        script.push_str(&body(h));
        if !script.ends_with('\n') {
            script.push('\n');
        }
        script.push_str(&h.name);
    }
    let mut out = shell.to_vec();
    out.push(script);
    out
}

pub(crate) fn argv_text(argv: &[String]) -> String {
    argv.join(" ")
}

fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(119).collect::<String>())
    } else {
        line
    }
}

/// Splits streamed output into lines for progress, keeping the last few.
struct LineSplitter {
    id: usize,
    partial: [Vec<u8>; 2],
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl LineSplitter {
    fn new(id: usize, tail: Arc<Mutex<VecDeque<String>>>) -> LineSplitter {
        LineSplitter { id, partial: [Vec::new(), Vec::new()], tail }
    }

    fn line(&self, stream: Stream, bytes: &[u8]) -> Event {
        let line = String::from_utf8_lossy(bytes).trim_end_matches('\r').to_string();
        let mut tail = self.tail.lock().unwrap();
        tail.push_back(line.clone());
        while tail.len() > ERROR_TAIL_LINES {
            tail.pop_front();
        }
        Event::Output { id: self.id, stream, line }
    }

    fn push(&mut self, stream: Stream, bytes: &[u8]) -> Vec<Event> {
        let slot = if stream == Stream::Stdout { 0 } else { 1 };
        self.partial[slot].extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(pos) = self.partial[slot].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[slot].drain(..=pos).collect();
            events.push(self.line(stream, &line[..line.len() - 1]));
        }
        events
    }

    fn flush(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        for (slot, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if !self.partial[slot].is_empty() {
                let line = std::mem::take(&mut self.partial[slot]);
                events.push(self.line(stream, &line));
            }
        }
        events
    }
}

/// A directory on disk as a copy source (its contents, recursively).
fn dir_source(dir: &Path, name: &str) -> Result<Source, String> {
    let mut entries = Vec::new();
    let root_meta = fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    entries.push(SourceEntry { rel: String::new(), fs_path: dir.to_path_buf(), metadata: root_meta });
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| e.to_string())?;
        let rel = entry.path().strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
        let metadata =
            fs::symlink_metadata(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
        entries.push(SourceEntry { rel, fs_path: entry.path().to_path_buf(), metadata });
    }
    Ok(Source { name: name.to_string(), entries })
}

/// A reader of the decompressed tar in `path`, or `None` when it is not a
/// tar archive (plain or compressed), which ADD copies as a file.
fn archive_reader(path: &Path) -> std::io::Result<Option<Box<dyn std::io::Read>>> {
    use std::io::Read;
    let mut head = [0u8; 512];
    let mut file = fs::File::open(path)?;
    let n = read_full(&mut file, &mut head)?;
    let head = &head[..n];
    let file = fs::File::open(path)?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(file))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(file))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else if n == 512 && &head[257..262] == b"ustar" {
        Box::new(file)
    } else {
        return Ok(None);
    };
    // A compressed file that is not a tar inside is copied as is.
    let mut inner = reader;
    let mut block = [0u8; 512];
    let got = read_full(&mut inner, &mut block).unwrap_or(0);
    if got < 512 || &block[257..262] != b"ustar" {
        return Ok(None);
    }
    let rest = inner;
    Ok(Some(Box::new(std::io::Cursor::new(block.to_vec()).chain(rest))))
}

fn read_full(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The sources a COPY names in another stage or image: exact paths or
/// wildcards (per path component), symlinks followed for the named path.
fn view_sources(view: &MergedView, pattern: &str) -> Result<Vec<Source>, String> {
    let parts = components(pattern);
    let mut matches: Vec<String> = vec![String::new()];
    for part in &parts {
        let mut next = Vec::new();
        for base in &matches {
            let dir = if base.is_empty() { "/".to_string() } else { base.clone() };
            if has_wildcard(part) {
                let entries = match view.lookup(&dir, true).map_err(|e| e.to_string())? {
                    Some(found) if found.metadata.is_dir() => {
                        view.read_dir(&found.path).map_err(|e| e.to_string())?
                    }
                    _ => BTreeMap::new(),
                };
                for name in entries.keys() {
                    if crate::context::wildcard_match(part, name) {
                        next.push(format!("{base}/{name}"));
                    }
                }
            } else {
                next.push(format!("{base}/{part}"));
            }
        }
        matches = next;
    }
    let mut sources = Vec::new();
    for path in matches {
        let path = if path.is_empty() { "/".to_string() } else { path };
        let Some(found) = view.lookup(&path, true).map_err(|e| e.to_string())? else {
            if has_wildcard(pattern) {
                continue;
            }
            return Err(format!("{pattern}: not found in the source stage"));
        };
        let name = components(&path).last().cloned().unwrap_or_default();
        let mut entries = vec![SourceEntry {
            rel: String::new(),
            fs_path: found.fs_path.clone(),
            metadata: found.metadata.clone(),
        }];
        if found.metadata.is_dir() {
            walk_view(view, &found.path, "", &mut entries).map_err(|e| e.to_string())?;
        }
        sources.push(Source { name, entries });
    }
    if sources.is_empty() {
        return Err(format!("{pattern}: no source files were specified"));
    }
    Ok(sources)
}

fn walk_view(view: &MergedView, dir: &str, rel: &str, out: &mut Vec<SourceEntry>) -> std::io::Result<()> {
    for (name, (fs_path, metadata)) in view.read_dir(dir)? {
        let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let is_dir = metadata.is_dir();
        out.push(SourceEntry { rel: child_rel.clone(), fs_path, metadata });
        if is_dir {
            walk_view(view, &format!("{}/{name}", dir.trim_end_matches('/')), &child_rel, out)?;
        }
    }
    Ok(())
}

/// An ADD source that is fetched rather than read from the context.
fn is_remote(source: &str) -> bool {
    ["http://", "https://", "git://", "git@"].iter().any(|p| source.starts_with(p))
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// The sources a COPY names in the build context.
fn context_sources(context: &Context, patterns: &[String]) -> Result<Vec<Source>, String> {
    let selections = context.resolve(patterns).map_err(|e| format!("COPY failed: {e}"))?;
    let mut sources = Vec::new();
    for selection in &selections {
        let mut entries = Vec::new();
        for selected in context.walk_selection(selection) {
            let metadata = fs::symlink_metadata(&selected.absolute)
                .map_err(|e| format!("{}: {e}", selected.absolute.display()))?;
            entries.push(SourceEntry {
                rel: selected.relative.to_string(),
                fs_path: selected.absolute,
                metadata,
            });
        }
        let name = selection.path.rsplit('/').next().unwrap_or_default().to_string();
        sources.push(Source { name, entries });
    }
    Ok(sources)
}

/// The content digest of what `patterns` select in the context.
fn context_digest(context: &Context, patterns: &[String]) -> Result<String, String> {
    let selections = context.resolve(patterns).map_err(|e| format!("COPY failed: {e}"))?;
    context.digest_of(&selections).map(|d| d.to_hex().to_string()).map_err(|e| e.to_string())
}
