//! Subcommands. Exit codes: 0 success, 1 a user error (bad Dockerfile, bad
//! input, no such image), 2 a usage error (clap's own).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hoist::store::Store;

mod build;
mod images;
mod parse;
mod registry;

#[derive(Parser)]
#[command(name = "hoist", version, about = "A daemonless Dockerfile build engine", propagate_version = true)]
struct Cli {
    /// The store directory [default: $HOIST_ROOT, /var/lib/hoist for root,
    /// else $XDG_DATA_HOME/hoist or ~/.local/share/hoist]
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Reach this registry (host[:port] or a CIDR range) over plain HTTP
    /// when HTTPS fails; loopback registries always are (repeatable)
    #[arg(long = "insecure-registry", global = true, value_name = "REGISTRY")]
    insecure_registries: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile and a context
    Build(Box<build::Args>),
    /// Parse a Dockerfile and print its syntax tree, or the first error
    Parse(parse::Args),
    /// Create an image from a root filesystem tarball
    Import(images::ImportArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Give an image another name
    Tag(images::TagArgs),
    /// Remove images (untag, and delete blobs no other image uses)
    Rmi(images::RmiArgs),
    /// Show an image's details as JSON
    Inspect(images::InspectArgs),
    /// Show how an image's layers were made
    History(images::HistoryArgs),
    /// Write images to a tar archive that `docker load` reads
    Save(images::SaveArgs),
    /// Read images from a docker-archive or OCI archive
    Load(images::LoadArgs),
    /// Fetch an image from a registry
    Pull(registry::PullArgs),
    /// Send an image to a registry
    Push(registry::PushArgs),
    /// Log in to a registry (credentials are kept in Docker's config.json)
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
}

/// An error already shown to the user, mapped to an exit code.
pub struct Failure(pub u8);

impl Failure {
    /// Prints `error: …` (and the causes) and fails with exit code 1.
    pub fn report(error: impl std::fmt::Display) -> Failure {
        eprintln!("error: {error}");
        Failure(1)
    }
}

/// The store the command works on.
pub struct Context {
    root: Option<PathBuf>,
    insecure_registries: Vec<String>,
}

impl Context {
    pub fn store(&self) -> Result<Store, Failure> {
        let root = self.root.clone().unwrap_or_else(Store::default_root);
        Store::open(&root).map_err(|e| {
            eprintln!("error: cannot open the store at {}: {e}", root.display());
            eprintln!("hint: choose another with --root DIR or HOIST_ROOT");
            Failure(1)
        })
    }

    /// The registry settings of this machine, with the flags.
    pub fn registry_settings(&self) -> Result<hoist::registry::settings::Settings, Failure> {
        hoist::registry::settings::Settings::load(&self.insecure_registries).map_err(Failure::report)
    }

    /// A registry client with those settings.
    pub fn registry(&self) -> Result<hoist::registry::Client, Failure> {
        Ok(hoist::registry::Client::new(self.registry_settings()?))
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let context = Context { root: cli.root, insecure_registries: cli.insecure_registries };
    let result = match cli.command {
        Command::Build(args) => build::run(&context, *args),
        Command::Parse(args) => parse::run(args),
        Command::Import(args) => images::import(&context, args),
        Command::Images(args) => images::images(&context, args),
        Command::Tag(args) => images::tag(&context, args),
        Command::Rmi(args) => images::rmi(&context, args),
        Command::Inspect(args) => images::inspect(&context, args),
        Command::History(args) => images::history(&context, args),
        Command::Save(args) => images::save(&context, args),
        Command::Load(args) => images::load(&context, args),
        Command::Pull(args) => registry::pull(&context, args),
        Command::Push(args) => registry::push(&context, args),
        Command::Login(args) => registry::login(&context, args),
        Command::Logout(args) => registry::logout(&context, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code)) => ExitCode::from(code),
    }
}
