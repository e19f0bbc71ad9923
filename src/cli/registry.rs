//! Registry commands: pull, push, login, logout. Output follows docker's.

use std::io::{BufRead, IsTerminal, Write};

use hoist::image::manifest::Platform;
use hoist::image::reference::{DEFAULT_DOMAIN, Reference};
use hoist::layer::Compression;
use hoist::progress::{self, Mode};
use hoist::registry::credentials::Credentials;
use hoist::registry::{self, PushOptions};

use super::{Context, Failure};

#[derive(clap::Args)]
pub struct PullArgs {
    /// The image: NAME[:TAG|@DIGEST]
    reference: String,
    /// The platform to pull from a multi-platform image, os/arch[/variant]
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image's reference
    #[arg(short, long)]
    quiet: bool,
}

fn renderer(quiet: bool) -> Box<dyn progress::Progress> {
    let mode = if quiet { Mode::Quiet } else { Mode::Auto };
    progress::renderer(mode, Box::new(std::io::stderr()), progress::stderr_is_terminal())
}

fn reference(text: &str) -> Result<Reference, Failure> {
    Reference::parse(text).map_err(Failure::report)
}

pub fn pull(context: &Context, args: PullArgs) -> Result<(), Failure> {
    let reference = reference(&args.reference)?;
    let platform = match &args.platform {
        Some(text) => Platform::parse(text).map_err(Failure::report)?,
        None => Platform::host(),
    };
    let store = context.store()?;
    let client = context.registry()?;
    let before = store.resolve(&reference.to_string()).ok().map(|s| s.image.id());
    if !args.quiet {
        eprintln!(
            "{}: Pulling from {}",
            reference.tag.as_deref().or(reference.digest.as_deref()).unwrap_or("latest"),
            reference.familiar_name()
        );
    }
    let progress = renderer(args.quiet);
    let pulled = registry::pull(&client, &store, &reference, &platform, progress.as_ref(), 1);
    progress.finish();
    let pulled = pulled.map_err(Failure::report)?;
    if !args.quiet {
        eprintln!("Digest: {}", pulled.manifest_digest);
        let status = if before == Some(pulled.image.id()) {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        eprintln!("Status: {status} {}", reference.familiar());
    }
    println!("{reference}");
    Ok(())
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// The image in the store, by name or ID
    image: String,
    /// Where to push it, NAME[:TAG] [default: the image's name]
    destination: Option<String>,
    /// How to compress the layers: gzip or zstd
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd"])]
    compression: String,
    /// Print only the pushed manifest's digest
    #[arg(short, long)]
    quiet: bool,
}

pub fn push(context: &Context, args: PushArgs) -> Result<(), Failure> {
    let store = context.store()?;
    let found = store.resolve(&args.image).map_err(Failure::report)?;
    let dest = match &args.destination {
        Some(text) => reference(text)?,
        None => Reference::parse(&args.image)
            .ok()
            .filter(|r| r.digest.is_none() && found.names.contains(r))
            .ok_or_else(|| {
                Failure::report(format!(
                    "{} is not an image name; give the destination: hoist push {} REGISTRY/REPOSITORY[:TAG]",
                    args.image, args.image
                ))
            })?,
    };
    let options = PushOptions {
        compression: if args.compression == "zstd" { Compression::Zstd } else { Compression::Gzip },
    };
    let client = context.registry()?;
    if !args.quiet {
        eprintln!("The push refers to repository [{}]", dest.name());
    }
    let progress = renderer(args.quiet);
    let pushed = registry::push(&client, &store, &found.image, &dest, &options, progress.as_ref(), 1);
    progress.finish();
    let pushed = pushed.map_err(Failure::report)?;
    if args.quiet {
        println!("{}", pushed.digest);
    } else {
        println!(
            "{}: digest: {} size: {}",
            dest.tag.as_deref().unwrap_or("latest"),
            pushed.digest,
            pushed.size
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The registry [default: Docker Hub]
    registry: Option<String>,
    /// The user name
    #[arg(short, long)]
    username: Option<String>,
    /// The password (prefer --password-stdin: this one shows in the process list)
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
}

/// `host[:port]` from what a user may type: `https://r.example/v1/`.
fn registry_host(text: Option<&str>) -> String {
    match text {
        None => DEFAULT_DOMAIN.to_string(),
        Some(text) => {
            let text = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")).unwrap_or(text);
            let host = text.split('/').next().unwrap_or(text);
            if host == "index.docker.io" || host == "registry-1.docker.io" {
                DEFAULT_DOMAIN.to_string()
            } else {
                host.to_string()
            }
        }
    }
}

fn prompt(question: &str) -> Result<String, Failure> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::report(format!("reading {question}: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads a password from the terminal without echoing it.
fn prompt_hidden(question: &str) -> Result<String, Failure> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let before = tcgetattr(&stdin).map_err(|e| Failure::report(format!("the terminal: {e}")))?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)
        .map_err(|e| Failure::report(format!("the terminal: {e}")))?;
    let answer = prompt(question);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &before);
    eprintln!();
    answer
}

pub fn login(context: &Context, args: LoginArgs) -> Result<(), Failure> {
    let registry = registry_host(args.registry.as_deref());
    let interactive = std::io::stdin().is_terminal();
    if args.password.is_some() && args.password_stdin {
        return Err(Failure::report("--password and --password-stdin are mutually exclusive"));
    }
    let username = match args.username {
        Some(user) => user,
        None if interactive && !args.password_stdin => prompt("Username: ")?,
        None => return Err(Failure::report("give the user name with --username")),
    };
    let password = match (args.password, args.password_stdin) {
        (Some(password), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            password
        }
        (None, true) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::report(format!("reading the password: {e}")))?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if interactive => prompt_hidden("Password: ")?,
        (None, false) => return Err(Failure::report("give the password with --password-stdin")),
    };
    if username.is_empty() || password.is_empty() {
        return Err(Failure::report("the user name and the password must not be empty"));
    }
    let client = context.registry()?;
    let credentials = Credentials { username, secret: password, identity_token: None };
    registry::login(&client, &registry, &credentials).map_err(Failure::report)?;
    println!("Login Succeeded");
    Ok(())
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// The registry [default: Docker Hub]
    registry: Option<String>,
}

pub fn logout(context: &Context, args: LogoutArgs) -> Result<(), Failure> {
    let registry = registry_host(args.registry.as_deref());
    let client = context.registry()?;
    let shown =
        if registry == DEFAULT_DOMAIN { "https://index.docker.io/v1/".to_string() } else { registry.clone() };
    if registry::logout(&client, &registry).map_err(Failure::report)? {
        println!("Removing login credentials for {shown}");
    } else {
        eprintln!("Not logged in to {shown}");
    }
    Ok(())
}
