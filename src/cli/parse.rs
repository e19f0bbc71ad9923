//! `hoist parse`: syntax check of a Dockerfile, printing the tree.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::ValueEnum;

use hoist::dockerfile::{self, instructions};

use super::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The Dockerfile to read (`-` for standard input)
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    file: PathBuf,
    /// What to print: BuildKit's parser-test dump, or the JSON syntax tree
    #[arg(long, value_enum, default_value_t = Format::Dump)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Dump,
    Json,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let shown = args.file.display().to_string();
    let bytes = if shown == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(&args.file)
    };
    let bytes = bytes.map_err(|e| {
        eprintln!("error: cannot read {shown}: {e}");
        if e.kind() == std::io::ErrorKind::NotFound {
            eprintln!("hint: pass the Dockerfile with -f PATH");
        }
        Failure(1)
    })?;
    let source = String::from_utf8_lossy(&bytes);
    let file = dockerfile::parse(&source).and_then(|file| instructions::typed(&file).map(|_| file)).map_err(
        |e| {
            eprint!("{}", e.render(&shown, &source));
            Failure(1)
        },
    )?;
    for warning in &file.warnings {
        eprintln!("{shown}:{}: warning: {}", warning.line, warning.message);
    }
    let out = match args.format {
        Format::Dump => file.dump(),
        Format::Json => {
            let mut tree = serde_json::to_value(&file).expect("syntax tree serialises");
            if let Some(object) = tree.as_object_mut() {
                object.insert("version".into(), 1.into());
                object.insert("file".into(), shown.clone().into());
            }
            let mut text = serde_json::to_string_pretty(&tree).expect("syntax tree serialises");
            text.push('\n');
            text
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()).map_err(|e| {
        eprintln!("error: writing output: {e}");
        Failure(1)
    })
}
