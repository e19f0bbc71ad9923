//! Subcommands. Exit codes: 0 success, 1 a user error (bad Dockerfile, bad
//! input), 2 a usage error (clap's own).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod parse;

#[derive(Parser)]
#[command(name = "hoist", version, about = "A daemonless Dockerfile build engine", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse a Dockerfile and print its syntax tree, or the first error
    Parse(parse::Args),
}

/// An error already shown to the user, mapped to an exit code.
pub struct Failure(pub u8);

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => parse::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code)) => ExitCode::from(code),
    }
}
