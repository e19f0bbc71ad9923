//! Solve: runs a [`Plan`]'s ops and returns the target stage's layers and
//! config. Knows nothing of Dockerfile syntax.
//!
//! - Scheduling: stages run on a rayon pool as soon as the stages they
//!   build on or copy from are done; the steps of a stage run in order.
//! - Keys: every step has a cache key ([`key`]): its parent's key, its op,
//!   the build args it used, and its content (the context files a COPY
//!   selects, the stage or image it copies from). A key found in the cache
//!   index reuses its layer without executing anything.
//! - Execution: RUN runs in a [`sandbox`] on a [`snapshot`] working root
//!   whose changes become the layer; COPY, ADD and WORKDIR write their layer
//!   straight from their sources.
//! - Failure: a failed step cancels the others (running sandboxes are
//!   killed) and comes back as a [`SolveError`] with the step's span.
//!
//! [`sandbox`]: crate::sandbox
//! [`snapshot`]: crate::snapshot

mod cache;
mod copy;
mod copy_plan;
mod error;
pub mod key;
mod run;
mod schedule;
mod sources;
mod stage;
mod user;

pub use copy_plan::CopyError;
pub use error::{SolveError, StepError};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::context::Context;
use crate::image::config::ImageConfig;
use crate::layer::Digest;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::snapshot::{LayerBlob, MergedView, Snapshots};
use crate::store::Store;

use cache::CacheIndex;

/// An image a plan names (FROM, `COPY --from`), as the caller resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// Its manifest digest: the key input of a stage built on it.
    pub manifest_digest: Digest,
    /// Its layers in the store, bottom first.
    pub layers: Vec<BuiltLayer>,
}

/// Everything a build needs besides the plan.
pub struct SolveOptions<'a> {
    /// The store: blobs, snapshots, the cache index.
    pub store: &'a Store,
    /// Every image the plan names, by the name written in the Dockerfile.
    pub images: &'a HashMap<String, BaseImage>,
    /// The build context directory (already extracted if it came as a tar).
    pub context_dir: PathBuf,
    /// The Dockerfile's path, for `<Dockerfile>.dockerignore`.
    pub dockerfile_path: PathBuf,
    /// Execute every step that makes a layer, ignoring the cache.
    pub no_cache: bool,
    /// How many stages may run at once.
    pub jobs: usize,
    /// Where events go.
    pub progress: &'a dyn Progress,
    /// The progress id of the first stage's FROM; later steps count up.
    pub first_id: usize,
    /// Set to stop the build; running steps are killed.
    pub cancel: Arc<AtomicBool>,
}

/// A layer of a built stage (stored uncompressed: its digest is its diff ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A built stage: its layers, config (with history and diff IDs) and key.
#[derive(Debug, Clone)]
pub struct BuiltStage {
    /// Bottom first.
    pub layers: Vec<BuiltLayer>,
    /// The image config, as it will be committed.
    pub config: ImageConfig,
    /// The key of its last step.
    pub key: blake3::Hash,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct Solved {
    /// The target stage.
    pub target: BuiltStage,
    /// Steps that ran.
    pub executed: usize,
    /// Steps found in the cache.
    pub cached: usize,
    /// Context files read to digest them (a no-op rebuild reads none).
    pub context_files_hashed: u64,
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
    snapshots: OnceLock<Snapshots>,
    /// How ADD extracts a local archive's owners: kept (rootless, within
    /// the subordinate ids, since the copy runs as the namespace's root).
    archive_ownership: crate::layer::Ownership,
    cache: CacheIndex,
    /// Opened on first use. Read without a lock once set: a COPY forked
    /// into the user-namespace helper must not wait on a lock another
    /// thread held at the fork.
    context: OnceLock<Arc<Context>>,
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
    let mut next = options.first_id;
    for &stage in &plan.order {
        first_id[stage] = next;
        next += 1 + plan.stages[stage].steps.len();
    }
    let build = Build {
        options,
        plan,
        snapshots: OnceLock::new(),
        cache,
        context: OnceLock::new(),
        context_opening: Mutex::new(()),
        first_id,
        executed: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        archive_ownership: if crate::idmap::rootless() {
            crate::snapshot::namespace_ownership()
        } else {
            crate::layer::Ownership::Preserve
        },
    };
    let mut results = build.run_stages()?;
    let target = results.remove(&plan.target).expect("the target is in the plan's order");
    let context_files_hashed = match build.context.get() {
        Some(context) => {
            context.save_cache()?;
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
    fn snapshots(&self) -> Result<&Snapshots, StepError> {
        if let Some(snapshots) = self.snapshots.get() {
            return Ok(snapshots);
        }
        let snapshots = Snapshots::open(self.options.store).map_err(StepError::Prepare)?;
        Ok(self.snapshots.get_or_init(|| snapshots))
    }

    fn stage_label(&self, stage: usize) -> String {
        let plan = &self.plan.stages[stage];
        plan.header.name.clone().unwrap_or_else(|| format!("stage-{stage}"))
    }

    fn context(&self) -> Result<Arc<Context>, StepError> {
        if let Some(context) = self.context.get() {
            return Ok(context.clone());
        }
        let _opening = self.context_opening.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(context) = self.context.get() {
            return Ok(context.clone());
        }
        let cache_dir = self.options.store.root().join("cache/context");
        let context =
            Context::open(&self.options.context_dir, &self.options.dockerfile_path, Some(&cache_dir))?;
        Ok(self.context.get_or_init(|| Arc::new(context)).clone())
    }

    fn layer_blobs(layers: &[BuiltLayer]) -> Vec<LayerBlob> {
        layers.iter().map(|l| LayerBlob { digest: l.digest, diff_id: l.digest }).collect()
    }

    fn view_of(&self, layers: &[BuiltLayer]) -> Result<MergedView, StepError> {
        let dirs = self.snapshots()?.unpack(&Self::layer_blobs(layers)).map_err(StepError::Unpack)?;
        Ok(MergedView::new(&dirs))
    }
}
