//! The library's entry point: [`build()`] runs the whole pipeline.
//!
//! - Reads the context (a directory, or a tar or lone Dockerfile given as
//!   bytes) and the Dockerfile; parses and types it.
//! - Resolves every base image: from the store, else (and always with
//!   `--pull`) pulled from its registry with the build's progress.
//! - Plans; solves under the store's shared lock; commits the image with
//!   its tags and labels.
//! - Writes the requested outputs, and pushes (`--push`, `type=registry`).
//!
//! Errors that point into the Dockerfile come back as a [`BuildError`]
//! carrying the file's name and text, so they render with the line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::diagnostic::Diagnostic;
use crate::dockerfile::{self, instructions};
use crate::export::{self, ExportError, Output};
use crate::image::reference::Reference;
use crate::layer::ExtractOptions;
use crate::plan::{self, Network, PlanRequest, Platform};
use crate::progress::{self, Event, Progress};
use crate::registry::settings::{Settings, SettingsError};
use crate::registry::{self, Client, PushOptions, RegistryError};
use crate::solve::{self, BaseImage, BuiltLayer, SolveError, SolveOptions};
use crate::store::{Image, Store, StoreError};

/// Where the build context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildContext {
    /// A directory.
    Dir(PathBuf),
    /// What `docker build -` reads from standard input: a tar archive
    /// (plain or compressed) of the context, or else a Dockerfile with an
    /// empty context.
    Stdin(Vec<u8>),
}

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    /// `Dockerfile` at the context's root.
    Default,
    /// A file (`-f PATH`); a relative path is taken from the current
    /// directory, or from the context's root when the context came as a tar.
    Path(PathBuf),
    /// The text itself (`-f -`), named `-` in messages.
    Text(Vec<u8>),
}

/// What to build and where the result goes.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The build context.
    pub context: BuildContext,
    /// The Dockerfile.
    pub dockerfile: DockerfileSource,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--platform`: only this machine's is built.
    pub platform: Option<Platform>,
    /// `-t`: names for the image.
    pub tags: Vec<Reference>,
    /// `--label`: added to the image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: fetch every base image again, even when the store has it.
    pub pull: bool,
    /// `--push`: push the image to the registry of each tag.
    pub push: bool,
    /// How pushed layers are compressed.
    pub push_options: PushOptions,
    /// Registry settings; `None` reads them from the environment when a
    /// registry is first needed.
    pub registry: Option<Settings>,
    /// `--network`: what RUN gets when it does not say.
    pub network: Network,
    /// `-o`: outputs besides the store.
    pub outputs: Vec<Output>,
    /// How many stages may run at once.
    pub jobs: usize,
    /// Set to stop the build.
    pub cancel: Arc<AtomicBool>,
}

impl BuildRequest {
    /// A build of `context` with every option at its default.
    pub fn new(context: BuildContext) -> BuildRequest {
        BuildRequest {
            context,
            dockerfile: DockerfileSource::Default,
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            tags: Vec::new(),
            labels: BTreeMap::new(),
            no_cache: false,
            pull: false,
            push: false,
            push_options: PushOptions::default(),
            registry: None,
            network: Network::Host,
            outputs: Vec::new(),
            jobs: DEFAULT_JOBS,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Stages mostly wait on their processes, not the CPU: by default every
/// stage that is ready runs.
pub const DEFAULT_JOBS: usize = 16;

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image, in the store.
    pub image: Image,
    /// Steps that ran.
    pub executed: usize,
    /// Steps found in the cache.
    pub cached: usize,
    /// Context files read to digest them.
    pub context_files_hashed: u64,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Something wrong at a line of the Dockerfile; renders with the line.
    #[error("{}", diagnostic.render(file, source_text).trim_end())]
    Dockerfile {
        /// The Dockerfile as the user named it.
        file: String,
        /// Its text.
        source_text: String,
        /// What is wrong.
        diagnostic: Diagnostic,
    },
    /// The context or the Dockerfile could not be read.
    #[error("{message}")]
    Input {
        /// What could not be read, and why.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The build failed outside any step.
    #[error(transparent)]
    Solve(#[from] SolveError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An output could not be written.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A push failed.
    #[error("pushing {reference}: {error}")]
    Push {
        /// Where to.
        reference: String,
        /// Why.
        error: RegistryError,
    },
    /// The registry settings are broken.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

impl BuildError {
    fn input(message: impl Into<String>) -> BuildError {
        BuildError::Input { message: message.into(), hint: None }
    }
}

/// Builds an image: parse → plan → solve → export. Events go to
/// `progress`; the caller calls its `finish` when this returns.
pub fn build(store: &Store, request: &BuildRequest, progress: &dyn Progress) -> Result<Built, BuildError> {
    if let Some(platform) = &request.platform
        && !Platform::host().runs(platform)
    {
        let host = Platform::host();
        return Err(BuildError::input(format!(
            "--platform {platform}: hoist builds for this machine only ({}/{}); no emulation",
            host.os, host.architecture
        )));
    }
    let context = Context::open(store, &request.context)?;
    let dockerfile = Dockerfile::read(&context, &request.dockerfile)?;
    let at_line = |diagnostic: Diagnostic| dockerfile.error(diagnostic);
    let file = dockerfile::parse(&dockerfile.text).map_err(at_line)?;
    let typed = instructions::typed(&file).map_err(at_line)?;
    for warning in &file.warnings {
        progress.event(Event::Warning {
            message: format!("{}:{}: {}", dockerfile.name, warning.line, warning.message),
        });
    }

    let plan_request = PlanRequest {
        build_args: request.build_args.clone(),
        target: request.target.as_ref().map(|t| t.to_lowercase()),
        network: request.network,
        ..PlanRequest::default()
    };
    let bases = plan::bases(&typed, file.escape, &plan_request).map_err(at_line)?;
    let registry = RegistryOnDemand::new(request);
    let platform = request.platform.clone().unwrap_or_else(Platform::host);
    // Pulls take the first progress ids; the steps come after them.
    let mut next_id = 1;
    let mut configs = HashMap::new();
    let mut images = HashMap::new();
    for (name, span) in bases.images() {
        let local = if request.pull { None } else { store.resolve(&name).ok().map(|s| s.image) };
        let image = match local {
            Some(image) => image,
            None => {
                let reference = Reference::parse(&name).map_err(|e| {
                    at_line(
                        Diagnostic::at(span, format!("{name}: {e}")).with_hint("name an image or a stage"),
                    )
                })?;
                let client = registry.client()?;
                let id = next_id;
                let pulled = progress::step(progress, id, format!("[internal] pull {reference}"), || {
                    registry::pull(client, store, &reference, &platform, progress, id + 1)
                })
                .map_err(|error| {
                    at_line(Diagnostic::at(span, format!("{name}: {error}")).with_hint(format!(
                        "check the name and hoist login, or load or import {name} into the store (hoist load -i, hoist import)"
                    )))
                })?;
                next_id += 1 + pulled.image.layers().len();
                pulled.image
            }
        };
        configs.insert(name.clone(), image.config.clone());
        let layers = image.layers().into_iter().map(|(digest, size)| BuiltLayer { digest, size }).collect();
        images.insert(name, BaseImage { manifest_digest: image.manifest_digest, layers });
    }
    let plan = plan::plan(&typed, file.escape, &plan_request, &configs).map_err(at_line)?;
    if !plan.unused_build_args.is_empty() {
        progress.event(Event::Warning {
            message: format!("one or more build-args {:?} were not consumed", plan.unused_build_args),
        });
    }

    let _lock = store.lock(false)?;
    let options = SolveOptions {
        store,
        images: &images,
        context_dir: context.dir().to_path_buf(),
        dockerfile_path: dockerfile.path.clone(),
        no_cache: request.no_cache,
        jobs: request.jobs,
        progress,
        first_id: next_id,
        cancel: request.cancel.clone(),
    };
    let step_ids: usize = plan.order.iter().map(|&stage| plan.stages[stage].steps.len() + 1).sum();
    let mut solved = solve::solve(&plan, &options).map_err(|e| match e.diagnostic() {
        Some(diagnostic) => at_line(diagnostic),
        None => BuildError::Solve(e),
    })?;
    plan::config::apply_labels(&mut solved.target.config, &request.labels);
    let image = export::commit(store, &solved.target, &request.tags)?;
    let mut pushes: Vec<Reference> = if request.push { request.tags.clone() } else { Vec::new() };
    let mut wants_push = request.push;
    for output in &request.outputs {
        output.write(store, &image, &request.tags)?;
        if let Output::Image { names, push: true } = output {
            wants_push = true;
            let names = if names.is_empty() { &request.tags } else { names };
            for name in names {
                if !pushes.contains(name) {
                    pushes.push(name.clone());
                }
            }
        }
    }
    if wants_push && pushes.is_empty() {
        return Err(BuildError::input("--push needs a name: give -t NAME or -o type=registry,name=NAME"));
    }
    let mut id = next_id + step_ids;
    for reference in &pushes {
        let client = registry.client()?;
        progress::step(progress, id, format!("pushing {reference}"), || {
            registry::push(client, store, &image, reference, &request.push_options, progress, id + 1)
        })
        .map_err(|error| BuildError::Push { reference: reference.to_string(), error })?;
        id += 1 + image.layers().len();
    }
    Ok(Built {
        image,
        executed: solved.executed,
        cached: solved.cached,
        context_files_hashed: solved.context_files_hashed,
    })
}

/// The registry client, made when a base image must be pulled or the
/// result pushed.
struct RegistryOnDemand<'r> {
    settings: &'r Option<Settings>,
    client: std::sync::OnceLock<Client>,
}

impl<'r> RegistryOnDemand<'r> {
    fn new(request: &'r BuildRequest) -> RegistryOnDemand<'r> {
        RegistryOnDemand { settings: &request.registry, client: std::sync::OnceLock::new() }
    }

    fn client(&self) -> Result<&Client, BuildError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let settings = match self.settings {
            Some(settings) => settings.clone(),
            None => Settings::load(&[])?,
        };
        Ok(self.client.get_or_init(|| Client::new(settings)))
    }
}

/// The build context on disk; a context that came as bytes lives in the
/// store's `tmp/` for the build.
struct Context {
    dir: PathBuf,
    /// The Dockerfile when stdin held one instead of a tar.
    stdin_dockerfile: Option<Vec<u8>>,
    from_archive: bool,
    _temp: Option<tempfile::TempDir>,
}

impl Context {
    fn open(store: &Store, source: &BuildContext) -> Result<Context, BuildError> {
        match source {
            BuildContext::Dir(path) => {
                if !path.is_dir() {
                    return Err(BuildError::input(format!(
                        "unable to prepare context: path {:?} not found or not a directory",
                        path.display().to_string()
                    )));
                }
                Ok(Context { dir: path.clone(), stdin_dockerfile: None, from_archive: false, _temp: None })
            }
            BuildContext::Stdin(bytes) => {
                let tmp = store.root().join("tmp");
                let temp = tempfile::Builder::new().prefix("context-").tempdir_in(&tmp).map_err(|e| {
                    BuildError::input(format!("cannot make a temporary directory in {}: {e}", tmp.display()))
                })?;
                let mut stdin_dockerfile = None;
                if looks_like_archive(bytes) {
                    crate::layer::extract(bytes.as_slice(), temp.path(), &ExtractOptions::default())
                        .map_err(|e| BuildError::input(format!("the context on standard input: {e}")))?;
                } else {
                    stdin_dockerfile = Some(bytes.clone());
                }
                let dir = temp.path().to_path_buf();
                Ok(Context { dir, stdin_dockerfile, from_archive: true, _temp: Some(temp) })
            }
        }
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A tar archive (plain or compressed) by its first bytes.
fn looks_like_archive(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || bytes.starts_with(b"BZh")
        || bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || (bytes.len() >= 262 && &bytes[257..262] == b"ustar")
}

/// The Dockerfile: how it is named in messages, where it is (for its
/// `.dockerignore`), and its text.
struct Dockerfile {
    name: String,
    path: PathBuf,
    text: String,
}

impl Dockerfile {
    fn read(context: &Context, source: &DockerfileSource) -> Result<Dockerfile, BuildError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| BuildError::input(format!("cannot read {}: {e}", path.display())))
        };
        let (name, path, bytes) = match (&context.stdin_dockerfile, source) {
            (Some(bytes), _) | (None, DockerfileSource::Text(bytes)) => {
                ("-".to_string(), context.dir.join("Dockerfile"), bytes.clone())
            }
            (None, DockerfileSource::Path(path)) => {
                let path = if path.is_absolute() || !context.from_archive {
                    path.clone()
                } else {
                    context.dir.join(path)
                };
                (path.display().to_string(), path.clone(), read(&path)?)
            }
            (None, DockerfileSource::Default) => {
                let path = context.dir.join("Dockerfile");
                let bytes = std::fs::read(&path).map_err(|e| BuildError::Input {
                    message: format!("cannot read {}: {e}", path.display()),
                    hint: Some("put a Dockerfile in the context or pass -f PATH".into()),
                })?;
                (path.display().to_string(), path, bytes)
            }
        };
        Ok(Dockerfile { name, path, text: String::from_utf8_lossy(&bytes).into_owned() })
    }

    fn error(&self, diagnostic: Diagnostic) -> BuildError {
        BuildError::Dockerfile { file: self.name.clone(), source_text: self.text.clone(), diagnostic }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tars_are_recognised_by_their_first_bytes() {
        let mut header = vec![0u8; 512];
        header[257..262].copy_from_slice(b"ustar");
        assert!(looks_like_archive(&header));
        assert!(looks_like_archive(&[0x1f, 0x8b, 8, 0]));
        assert!(looks_like_archive(&[0x28, 0xb5, 0x2f, 0xfd, 0]));
        assert!(!looks_like_archive(b"FROM busybox\nRUN true\n"));
    }

    #[test]
    fn a_dockerfile_error_renders_with_its_line() {
        let error = BuildError::Dockerfile {
            file: "Dockerfile".into(),
            source_text: "FROM x\nRUNN y\n".into(),
            diagnostic: Diagnostic::at_line("unknown instruction: RUNN", 2).with_hint("did you mean RUN?"),
        };
        let text = error.to_string();
        assert!(text.starts_with("Dockerfile:2:1: error: unknown instruction: RUNN"), "{text}");
        assert!(text.contains("2 | RUNN y") && text.ends_with("hint: did you mean RUN?"), "{text}");
    }
}
