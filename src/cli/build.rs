//! `hoist build`: flags onto parse → plan → solve → export.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use hoist::dockerfile::{self, ParseError, instructions};
use hoist::image::reference::Reference;
use hoist::plan::{self, Base, PlanRequest, Platform};
use hoist::progress::{self, Event, Mode};
use hoist::sandbox::Network;
use hoist::solve::{self, SolveError, SolveOptions, export};

use super::{Context, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The build context: a directory, or `-` for a tar archive (or a lone
    /// Dockerfile) on standard input
    path: String,
    /// The Dockerfile [default: PATH/Dockerfile]; `-` reads standard input
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Name the image (repeatable)
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Set a build arg: K=V, or K to take it from the environment
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Build this stage (and what it needs) instead of the last one
    #[arg(long)]
    target: Option<String>,
    /// Execute every step, ignoring the cache
    #[arg(long)]
    no_cache: bool,
    /// Always fetch base images from their registry
    #[arg(long)]
    pull: bool,
    /// Network for RUN: host (default) or none
    #[arg(long, default_value = "host")]
    network: String,
    /// Add a label to the image (repeatable)
    #[arg(long = "label")]
    labels: Vec<String>,
    /// The platform to build for; only this machine's is supported
    #[arg(long)]
    platform: Option<String>,
    /// How to show progress: auto, tty, plain, json or quiet
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Where the result goes: type=docker|oci|tar,dest=FILE, type=local,dest=DIR, or DIR
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// Write the image ID to this file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Print only the image ID; no progress
    #[arg(short = 'q', long)]
    quiet: bool,
    /// How many stages may build at once [default: 16]
    #[arg(long)]
    jobs: Option<usize>,
}

const DEFAULT_JOBS: usize = 16;

enum OutputSpec {
    Archive(PathBuf),
    Local(PathBuf),
    RootfsTar(PathBuf),
}

fn parse_output(text: &str) -> Result<OutputSpec, String> {
    if !text.contains('=') {
        return Ok(OutputSpec::Local(PathBuf::from(text)));
    }
    let mut kind = None;
    let mut dest = None;
    for field in text.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some((k, _)) if k == "name" || k == "compression" => {}
            _ => return Err(format!("--output {text}: unknown field {field:?}")),
        }
    }
    let dest = dest.ok_or_else(|| format!("--output {text}: dest=… is required"))?;
    match kind.as_deref() {
        Some("docker") | Some("oci") => Ok(OutputSpec::Archive(dest)),
        Some("local") => Ok(OutputSpec::Local(dest)),
        Some("tar") => Ok(OutputSpec::RootfsTar(dest)),
        Some(other) => Err(format!("--output type={other} is not supported: use docker, oci, local or tar")),
        None => Err(format!("--output {text}: type=… is required")),
    }
}

fn fail(message: impl std::fmt::Display) -> Failure {
    Failure::report(message)
}

/// A tar archive (plain or compressed) by its first bytes.
fn looks_like_archive(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || bytes.starts_with(b"BZh")
        || bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || (bytes.len() >= 262 && &bytes[257..262] == b"ustar")
}

pub fn run(context: &Context, args: Args) -> Result<(), Failure> {
    let store = context.store()?;
    let mut stdin_used = false;
    let mut read_stdin = || -> Result<Vec<u8>, Failure> {
        if stdin_used {
            return Err(fail("standard input cannot be both the context and the Dockerfile"));
        }
        stdin_used = true;
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| fail(format!("reading standard input: {e}")))?;
        Ok(buf)
    };

    // The context: a directory, or a tar (or a Dockerfile alone) on stdin.
    let mut _context_temp: Option<tempfile::TempDir> = None;
    let mut stdin_dockerfile: Option<Vec<u8>> = None;
    let context_dir: PathBuf = if args.path == "-" {
        let bytes = read_stdin()?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(store.root().join("tmp"))
            .map_err(|e| fail(format!("cannot make a temporary directory: {e}")))?;
        if looks_like_archive(&bytes) {
            hoist::layer::extract(bytes.as_slice(), dir.path(), &hoist::layer::ExtractOptions::default())
                .map_err(|e| fail(format!("the context on standard input: {e}")))?;
        } else {
            stdin_dockerfile = Some(bytes);
        }
        let path = dir.path().to_path_buf();
        _context_temp = Some(dir);
        path
    } else {
        let path = PathBuf::from(&args.path);
        if !path.is_dir() {
            return Err(fail(format!(
                "unable to prepare context: path {:?} not found or not a directory",
                args.path
            )));
        }
        path
    };

    let (dockerfile_shown, dockerfile_path, source) = match (&args.file, stdin_dockerfile) {
        (_, Some(bytes)) => ("-".to_string(), context_dir.join("Dockerfile"), bytes),
        (Some(f), None) if f == "-" => ("-".to_string(), context_dir.join("Dockerfile"), read_stdin()?),
        (Some(f), None) => {
            let path = if Path::new(f).is_absolute() || args.path != "-" {
                PathBuf::from(f)
            } else {
                context_dir.join(f)
            };
            let bytes =
                std::fs::read(&path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            (f.clone(), path, bytes)
        }
        (None, None) => {
            let path = context_dir.join("Dockerfile");
            let bytes = std::fs::read(&path).map_err(|e| {
                Failure::report(format!(
                    "cannot read {}: {e}\nhint: put a Dockerfile in the context or pass -f PATH",
                    path.display()
                ))
            })?;
            (path.display().to_string(), path, bytes)
        }
    };
    let source = String::from_utf8_lossy(&source).into_owned();
    let render = |e: &ParseError| -> Failure {
        eprint!("{}", e.render(&dockerfile_shown, &source));
        Failure(1)
    };
    let file = dockerfile::parse(&source).map_err(|e| render(&e))?;
    let typed = instructions::typed(&file).map_err(|e| render(&e))?;
    for warning in &file.warnings {
        eprintln!("{dockerfile_shown}:{}: warning: {}", warning.line, warning.message);
    }

    let mut request = PlanRequest::default();
    if let Some(platform) = &args.platform {
        let asked = Platform::parse(platform).map_err(|e| fail(e.message))?;
        if asked != Platform::host() {
            return Err(fail(format!(
                "--platform {platform}: hoist builds for this machine only ({}/{}); no emulation",
                Platform::host().os,
                Platform::host().architecture
            )));
        }
    }
    let mut build_args = BTreeMap::new();
    for arg in &args.build_args {
        match arg.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(arg) {
                    build_args.insert(arg.clone(), v);
                }
            }
        }
    }
    request.build_args = build_args;
    request.target = args.target.clone().map(|t| t.to_lowercase());
    let tags: Vec<Reference> = args
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_err(|e| fail(format!("invalid tag {t:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    let network = match args.network.as_str() {
        "host" | "default" => Network::Host,
        "none" => Network::None,
        other => return Err(fail(format!("--network {other}: use host or none"))),
    };
    let outputs: Vec<OutputSpec> =
        args.outputs.iter().map(|o| parse_output(o).map_err(fail)).collect::<Result<_, _>>()?;
    let mut labels = BTreeMap::new();
    for label in &args.labels {
        let (k, v) = label.split_once('=').unwrap_or((label, ""));
        labels.insert(k.to_string(), v.to_string());
    }

    // Base images come from the store.
    let (headers, copy_images) = plan::bases(&typed, &request).map_err(|e| render(&e.to_parse_error()))?;
    let mut images = HashMap::new();
    let mut wanted: Vec<(String, Option<hoist::dockerfile::parse::Span>)> = headers
        .iter()
        .filter_map(|h| match &h.base {
            Base::Image(name) => Some((name.clone(), Some(h.span))),
            _ => None,
        })
        .collect();
    wanted.extend(copy_images.into_iter().map(|n| (n, None)));
    for (name, span) in wanted {
        if images.contains_key(&name) {
            continue;
        }
        if args.pull {
            return Err(fail(format!(
                "--pull: {name} cannot be pulled: hoist has no registry client yet; load or import the image"
            )));
        }
        let found = store.resolve(&name).map(|s| s.image);
        match found {
            Ok(image) => {
                images.insert(name, image.config);
            }
            Err(e) => {
                let error = ParseError {
                    message: format!("{name}: {e}"),
                    line: span.map_or(1, |s| s.start),
                    end_line: span.map_or(1, |s| s.end),
                    column: 1,
                    hint: Some(format!(
                        "load or import {name} into the store first (hoist load -i, hoist import)"
                    )),
                };
                return Err(render(&error));
            }
        }
    }
    let plan = plan::plan(&typed, &request, &images).map_err(|e| render(&e.to_parse_error()))?;

    let mode: Mode = if args.quiet { Mode::Quiet } else { args.progress.parse().map_err(fail)? };
    let progress = progress::renderer(mode, Box::new(std::io::stderr()), progress::stderr_is_terminal());
    if !plan.unused_build_args.is_empty() {
        progress.event(Event::Warning {
            message: format!("one or more build-args {:?} were not consumed", plan.unused_build_args),
        });
    }
    let cancel = Arc::new(AtomicBool::new(false));
    // Stages mostly wait on their processes, not the CPU: by default every
    // stage that is ready runs.
    let jobs = args.jobs.unwrap_or(DEFAULT_JOBS);
    let _lock = store.lock(false).map_err(fail)?;
    let options = SolveOptions {
        store: &store,
        context_dir,
        dockerfile_path,
        no_cache: args.no_cache,
        network,
        jobs,
        progress: progress.as_ref(),
        cancel,
    };
    let solved = solve::solve(&plan, &options);
    progress.finish();
    let mut solved = solved.map_err(|e| match e {
        SolveError::Step { span, instruction, message, hint } => render(&ParseError {
            message: format!("{instruction}: {message}"),
            line: span.start,
            end_line: span.end,
            column: 1,
            hint,
        }),
        other => fail(other),
    })?;
    for (k, v) in labels {
        solved.target.config.config.labels.insert(k, v);
    }
    let image = export::commit_image(&store, &solved.target, &tags).map_err(fail)?;
    for output in &outputs {
        match output {
            OutputSpec::Archive(dest) => export::write_archive(&store, &image, &tags, dest),
            OutputSpec::Local(dest) => export::write_local(&store, &image, dest),
            OutputSpec::RootfsTar(dest) => export::write_rootfs_tar(&store, &image, dest),
        }
        .map_err(fail)?;
    }
    let id = image.id().to_string();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    }
    if args.quiet {
        println!("{id}");
    } else {
        eprintln!(
            "built {id} ({} steps run, {} cached, {} context files read){}",
            solved.executed,
            solved.cached,
            solved.context_files_hashed,
            if tags.is_empty() {
                String::new()
            } else {
                format!(", tagged {}", tags.iter().map(|t| t.familiar()).collect::<Vec<_>>().join(", "))
            }
        );
    }
    std::io::stdout().flush().ok();
    Ok(())
}
