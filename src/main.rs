//! The `hoist` command line: clap commands mapped onto library calls.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
