//! One stage: its base, then each step keyed, looked up in the cache, and
//! executed on a miss; the config, history and diff IDs assembled as
//! BuildKit writes them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use super::cache::{CacheRecord, CachedLayer};
use super::key::{self, BaseInput, ContentInput};
use super::sources::context_digest;
use super::{BaseImage, Build, BuiltLayer, BuiltStage, SolveError, StepError};
use crate::image::config::{History, ImageConfig, RootFs};
use crate::image::time::rfc3339;
use crate::layer::Digest;
use crate::plan::{Base, CopyFrom, Op, Step};
use crate::progress::Event;

impl Build<'_> {
    /// Builds stage `index` on the stages it depends on (`inputs`).
    pub(super) fn build_stage(
        &self,
        index: usize,
        inputs: &HashMap<usize, BuiltStage>,
    ) -> Result<BuiltStage, SolveError> {
        let stage = &self.plan.stages[index];
        let progress = self.options.progress;
        let total = stage.steps.len() + 1;
        let label = self.stage_label(index);
        let from_id = self.first_id[index];
        let base_name = match &stage.header.base {
            Base::Scratch => "scratch".to_string(),
            Base::Image(name) => name.clone(),
            Base::Stage(i) => self.stage_label(*i),
        };
        progress.event(Event::Started { id: from_id, name: format!("[{label} 1/{total}] FROM {base_name}") });
        let started = Instant::now();
        let (mut layers, base_config, mut key) = match &stage.header.base {
            Base::Scratch => {
                let key = key::base_key(BaseInput::Scratch { architecture: &stage.base_config.architecture });
                (Vec::new(), stage.base_config.clone(), key)
            }
            Base::Stage(parent) => {
                let built = inputs[parent].clone();
                (built.layers, built.config, built.key)
            }
            Base::Image(name) => {
                let image = self.base_image(name);
                let mut config = stage.base_config.clone();
                // Layers are stored uncompressed: the diff IDs are the digests.
                config.rootfs.diff_ids = image.layers.iter().map(|l| l.digest.to_string()).collect();
                (image.layers.clone(), config, key::base_key(BaseInput::Image(image.manifest_digest)))
            }
        };
        progress.event(Event::Done { id: from_id, seconds: started.elapsed().as_secs_f64() });
        // Metadata comes from the plan; layers and history from the steps.
        let mut config = ImageConfig {
            history: base_config.history,
            rootfs: RootFs { kind: "layers".into(), diff_ids: base_config.rootfs.diff_ids },
            ..stage.config.clone()
        };
        let mut last_created: Option<String> = None;

        for (n, step) in stage.steps.iter().enumerate() {
            if self.options.cancel.load(Ordering::SeqCst) {
                return Err(SolveError::Cancelled);
            }
            let id = from_id + 1 + n;
            let name = format!("[{label} {}/{total}] {}", n + 2, step.text);
            let at_step = |error: StepError| match error {
                StepError::Cancelled => SolveError::Cancelled,
                error => SolveError::Step {
                    span: step.span,
                    instruction: step.op.instruction(),
                    error: Box::new(error),
                },
            };
            let started = Instant::now();
            let content = self.content_input(step, inputs).map_err(at_step).inspect_err(|e| {
                progress.event(Event::Started { id, name: name.clone() });
                progress.event(Event::Failed { id, seconds: 0.0, message: step_message(e) });
            })?;
            key = key::step_key(&key, step, content);
            let makes_layer = step.op.makes_layer();
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
                        match self.execute(id, step, &layers, inputs).map_err(at_step) {
                            Ok(layer) => {
                                progress.event(Event::Done { id, seconds: started.elapsed().as_secs_f64() });
                                self.executed.fetch_add(1, Ordering::Relaxed);
                                layer
                            }
                            Err(e) => {
                                let seconds = started.elapsed().as_secs_f64();
                                progress.event(Event::Failed { id, seconds, message: step_message(&e) });
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
                let digest: Digest = layer.digest.parse().map_err(|_| {
                    SolveError::Store(crate::store::StoreError::Invalid {
                        what: format!("cache record of {}", key.to_hex()),
                        reason: format!("{} is not a digest", layer.digest),
                    })
                })?;
                layers.push(BuiltLayer { digest, size: layer.size });
                config.rootfs.diff_ids.push(layer.digest.clone());
            }
            if let Some(created_by) = &step.history {
                config.history.push(History {
                    created: Some(record.created.clone()),
                    created_by: Some(created_by.clone()),
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

    /// The content a step reads, as its key sees it.
    fn content_input(
        &self,
        step: &Step,
        inputs: &HashMap<usize, BuiltStage>,
    ) -> Result<ContentInput, StepError> {
        let Op::Copy(copy) = &step.op else { return Ok(ContentInput::None) };
        Ok(match &copy.from {
            CopyFrom::Context if copy.sources.is_empty() => ContentInput::None,
            CopyFrom::Context => {
                ContentInput::Context(context_digest(self.context()?.as_ref(), &copy.sources)?)
            }
            CopyFrom::Stage(i) => ContentInput::Stage(inputs[i].key),
            CopyFrom::Image(name) => ContentInput::Image(self.base_image(name).manifest_digest),
        })
    }

    /// Executes a step that makes a layer; `None` when it changed nothing.
    fn execute(
        &self,
        id: usize,
        step: &Step,
        layers: &[BuiltLayer],
        inputs: &HashMap<usize, BuiltStage>,
    ) -> Result<Option<BuiltLayer>, StepError> {
        match &step.op {
            Op::Run(run) => self.execute_run(id, run, layers),
            Op::Workdir(workdir) => self.execute_workdir(workdir, layers).map(Some),
            Op::Copy(copy) => {
                let sources: &[BuiltLayer] = match &copy.from {
                    CopyFrom::Context => &[],
                    CopyFrom::Stage(i) => &inputs[i].layers,
                    CopyFrom::Image(name) => &self.base_image(name).layers,
                };
                self.execute_copy(copy, layers, sources).map(Some)
            }
            Op::Config(_) => Ok(None),
        }
    }

    /// An image the plan names; the caller resolved every one.
    fn base_image(&self, name: &str) -> &BaseImage {
        self.options
            .images
            .get(name)
            .unwrap_or_else(|| panic!("image {name} was not resolved before solving"))
    }
}

/// What a step's failure says in progress (the line is not repeated).
fn step_message(error: &SolveError) -> String {
    match error {
        SolveError::Step { error, .. } => error.to_string(),
        other => other.to_string(),
    }
}
