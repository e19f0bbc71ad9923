//! `hoist build`: flags onto a [`BuildRequest`] for [`hoist::build()`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use hoist::build::{BuildContext, BuildError, BuildRequest, DEFAULT_JOBS, DockerfileSource};
use hoist::export::Output;
use hoist::image::reference::Reference;
use hoist::layer::Compression;
use hoist::plan::{Network, Platform};
use hoist::progress::{self, Mode};

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
    /// Push the image to the registry of each tag (-t)
    #[arg(long)]
    push: bool,
    /// How pushed layers are compressed: gzip or zstd
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd"])]
    compression: String,
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

fn fail(message: impl std::fmt::Display) -> Failure {
    Failure::report(message)
}

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).map_err(|e| fail(format!("reading standard input: {e}")))?;
    Ok(buf)
}

/// The request the flags describe.
fn request(cli: &Context, args: &Args) -> Result<BuildRequest, Failure> {
    let context = if args.path == "-" {
        if args.file.as_deref() == Some("-") {
            return Err(fail("standard input cannot be both the context and the Dockerfile"));
        }
        BuildContext::Stdin(read_stdin()?)
    } else {
        BuildContext::Dir(PathBuf::from(&args.path))
    };
    let mut request = BuildRequest::new(context);
    request.dockerfile = match args.file.as_deref() {
        None => DockerfileSource::Default,
        Some("-") => DockerfileSource::Text(read_stdin()?),
        Some(path) => DockerfileSource::Path(PathBuf::from(path)),
    };
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
    request.target = args.target.clone();
    request.platform = args.platform.as_deref().map(Platform::parse).transpose().map_err(fail)?;
    request.tags = args
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_err(|e| fail(format!("invalid tag {t:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    request.labels = args
        .labels
        .iter()
        .map(|label| {
            let (k, v) = label.split_once('=').unwrap_or((label, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    request.network = match args.network.as_str() {
        "host" | "default" => Network::Host,
        "none" => Network::None,
        other => return Err(fail(format!("--network {other}: use host or none"))),
    };
    request.outputs =
        args.outputs.iter().map(|o| Output::parse(o).map_err(fail)).collect::<Result<_, _>>()?;
    request.no_cache = args.no_cache;
    request.pull = args.pull;
    request.push = args.push;
    request.push_options.compression =
        if args.compression == "zstd" { Compression::Zstd } else { Compression::Gzip };
    request.registry = Some(cli.registry_settings()?);
    request.jobs = args.jobs.unwrap_or(DEFAULT_JOBS);
    Ok(request)
}

pub fn run(context: &Context, args: Args) -> Result<(), Failure> {
    let store = context.store()?;
    let request = request(context, &args)?;
    let mode: Mode = if args.quiet { Mode::Quiet } else { args.progress.parse().map_err(fail)? };
    let progress = progress::renderer(mode, Box::new(std::io::stderr()), progress::stderr_is_terminal());
    let built = hoist::build(&store, &request, progress.as_ref());
    progress.finish();
    let built = built.map_err(|error| match error {
        BuildError::Dockerfile { .. } => {
            eprintln!("{error}");
            Failure(1)
        }
        BuildError::Input { message, hint } => {
            eprintln!("error: {message}");
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            Failure(1)
        }
        other => fail(other),
    })?;
    let id = built.image.id().to_string();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    }
    if args.quiet {
        println!("{id}");
    } else {
        let tags = &request.tags;
        eprintln!(
            "built {id} ({} steps run, {} cached, {} context files read){}",
            built.executed,
            built.cached,
            built.context_files_hashed,
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
