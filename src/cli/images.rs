//! Image commands: import, images, tag, rmi, inspect, history, save, load.
//! Output follows the matching `docker` command.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::{Value, json};

use hoist::export::archive::{self, SaveItem};
use hoist::export::import::{ImportOptions, apply_change, import as import_image};
use hoist::image::config::ImageConfig;
use hoist::image::display::{human_age, human_size};
use hoist::image::reference::Reference;
use hoist::image::time::parse_rfc3339;
use hoist::store::{ImageSummary, RemovedImage, StoreError};

use super::{Context, Failure};

fn store_failure(error: StoreError) -> Failure {
    match error {
        StoreError::NoSuchImage(name) => {
            eprintln!("error: no such image: {name}");
            eprintln!("hint: `hoist images` lists the images in the store");
            Failure(1)
        }
        other => Failure::report(other),
    }
}

fn reference(text: &str) -> Result<Reference, Failure> {
    Reference::parse(text).map_err(Failure::report)
}

fn short_id(summary: &ImageSummary) -> String {
    summary.image.id().hex()[..12].to_string()
}

/// Left-aligned columns as Docker's tabwriter makes them: at least three
/// spaces apart, each at least ten characters wide with its padding.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = io::stdout().lock();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let width = (widths[i] + 3).max(10);
                line.push_str(&" ".repeat(width - cell.chars().count()));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The root filesystem tarball (plain, gzip or zstd), or - for standard input
    file: String,
    /// The name to give the image, NAME[:TAG]
    name: Option<String>,
    /// Apply a Dockerfile instruction to the image's config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR…)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// The history comment
    #[arg(short, long)]
    message: Option<String>,
}

pub fn import(context: &Context, args: ImportArgs) -> Result<(), Failure> {
    let name = args.name.as_deref().map(reference).transpose()?;
    // A bad --change fails before any input is read.
    let mut scratch = ImageConfig::new_for_host();
    for change in &args.changes {
        apply_change(&mut scratch, change).map_err(Failure::report)?;
    }
    let store = context.store()?;
    let options =
        ImportOptions { changes: args.changes, message: args.message, source_name: args.file.clone() };
    let input: Box<dyn Read> = if args.file == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file =
            File::open(&args.file).map_err(|e| Failure::report(format!("cannot read {}: {e}", args.file)))?;
        Box::new(file)
    };
    let image = import_image(&store, input, name.as_ref(), &options).map_err(Failure::report)?;
    println!("{}", image.id());
    Ok(())
}

#[derive(clap::Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show manifest digests
    #[arg(long)]
    digests: bool,
    /// `table` (default) or `json` (one object per line)
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Only images of this repository (and tag)
    reference: Option<String>,
}

pub fn images(context: &Context, args: ImagesArgs) -> Result<(), Failure> {
    let store = context.store()?;
    let mut images = store.images().map_err(store_failure)?;
    let created = |s: &ImageSummary| s.image.config.created.as_deref().and_then(parse_rfc3339);
    images.sort_by_key(|s| std::cmp::Reverse(created(s)));
    let filter =
        args.reference.as_deref().map(Reference::parse_name_only).transpose().map_err(Failure::report)?;
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for summary in &images {
        // A row per tag, and one per repository known only by a digest.
        let tags = summary.names.iter().filter(|n| n.tag.is_some());
        let digest_only = summary.names.iter().filter(|n| {
            n.tag.is_none() && !summary.names.iter().any(|t| t.tag.is_some() && t.name() == n.name())
        });
        let mut names: Vec<Option<&Reference>> = tags.chain(digest_only).map(Some).collect();
        if names.is_empty() {
            names.push(None);
        }
        for name in names {
            if let Some(filter) = &filter {
                let matches = name.is_some_and(|n| {
                    n.name() == filter.name() && (filter.tag.is_none() || n.tag == filter.tag)
                });
                if !matches {
                    continue;
                }
            }
            rows.push((summary, name));
        }
    }
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for (summary, _) in rows {
            if seen.insert(summary.image.id()) {
                println!("{}", short_id(summary));
            }
        }
        return Ok(());
    }
    let repo = |n: Option<&Reference>| n.map_or("<none>".to_string(), Reference::familiar_name);
    let tag = |n: Option<&Reference>| n.and_then(|n| n.tag.clone()).unwrap_or_else(|| "<none>".to_string());
    let age = |s: &ImageSummary| created(s).map_or("N/A".to_string(), |t| human_age(t, now));
    // The registry's manifest digest for the row's repository, as Docker
    // shows it after a pull or push.
    let repo_digest = |s: &ImageSummary, n: Option<&Reference>| {
        n.and_then(|n| s.names.iter().find(|d| d.digest.is_some() && d.name() == n.name()))
            .and_then(|d| d.digest.clone())
            .unwrap_or_else(|| "<none>".to_string())
    };
    if args.format == "json" {
        for (summary, name) in rows {
            let line = json!({
                "Repository": repo(name),
                "Tag": tag(name),
                "ID": short_id(summary),
                "Digest": repo_digest(summary, name),
                "CreatedAt": summary.image.config.created.clone().unwrap_or_default(),
                "CreatedSince": age(summary),
                "Size": human_size(summary.image.size()),
            });
            println!("{line}");
        }
        return Ok(());
    }
    let mut table = vec![];
    let mut head = vec!["REPOSITORY".to_string(), "TAG".to_string()];
    if args.digests {
        head.push("DIGEST".to_string());
    }
    head.extend(["IMAGE ID", "CREATED", "SIZE"].map(String::from));
    table.push(head);
    for (summary, name) in rows {
        let mut row = vec![repo(name), tag(name)];
        if args.digests {
            row.push(repo_digest(summary, name));
        }
        row.extend([short_id(summary), age(summary), human_size(summary.image.size())]);
        table.push(row);
    }
    print_table(&table);
    Ok(())
}

#[derive(clap::Args)]
pub struct TagArgs {
    /// The image, by name or ID
    source: String,
    /// The new name, NAME[:TAG]
    target: String,
}

pub fn tag(context: &Context, args: TagArgs) -> Result<(), Failure> {
    let target = reference(&args.target)?;
    let store = context.store()?;
    store.tag(&args.source, &target).map_err(store_failure)
}

#[derive(clap::Args)]
pub struct RmiArgs {
    /// Remove an image even if it has several names
    #[arg(short, long)]
    force: bool,
    /// Images, by name or ID
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn rmi(context: &Context, args: RmiArgs) -> Result<(), Failure> {
    let store = context.store()?;
    let mut failed = false;
    for image in &args.images {
        match store.remove(image, args.force) {
            Ok(removed) => {
                for item in removed {
                    match item {
                        RemovedImage::Untagged(name) => println!("Untagged: {}", name.familiar()),
                        RemovedImage::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
            Err(e) => {
                failed = true;
                let _ = store_failure(e);
            }
        }
    }
    if failed { Err(Failure(1)) } else { Ok(()) }
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Images, by name or ID
    #[arg(required = true)]
    images: Vec<String>,
}

fn inspect_value(summary: &ImageSummary) -> Value {
    let image = &summary.image;
    let config = &image.config;
    json!({
        "Id": image.id().to_string(),
        "RepoTags": summary.names.iter().filter(|n| n.tag.is_some()).map(Reference::familiar).collect::<Vec<_>>(),
        "RepoDigests": summary.names.iter().filter(|n| n.tag.is_none()).map(Reference::familiar).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": config.extra.get("comment").cloned().unwrap_or(Value::String(String::new())),
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": config.extra.get("docker_version").cloned().unwrap_or(Value::String(String::new())),
        "Author": config.author.clone().unwrap_or_default(),
        "Config": serde_json::to_value(&config.config).expect("config serialises"),
        "Architecture": config.architecture,
        "Variant": config.variant.clone(),
        "Os": config.os,
        "Size": image.size(),
        "RootFS": { "Type": config.rootfs.kind, "Layers": config.rootfs.diff_ids },
        "Metadata": { "ManifestDigest": image.manifest_digest.to_string() },
    })
}

pub fn inspect(context: &Context, args: InspectArgs) -> Result<(), Failure> {
    let store = context.store()?;
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.images {
        match store.resolve(name) {
            Ok(summary) => out.push(inspect_value(&summary)),
            Err(e) => {
                failed = true;
                let _ = store_failure(e);
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    if failed { Err(Failure(1)) } else { Ok(()) }
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Do not truncate CREATED BY
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// The image, by name or ID
    image: String,
}

pub fn history(context: &Context, args: HistoryArgs) -> Result<(), Failure> {
    let store = context.store()?;
    let summary = store.resolve(&args.image).map_err(store_failure)?;
    let image = &summary.image;
    let layers = image.layers();
    let mut layer_sizes = layers.iter().map(|(_, size)| *size);
    let now = SystemTime::now();
    let mut rows: Vec<Vec<String>> = image
        .config
        .history
        .iter()
        .map(|entry| {
            let size = if entry.empty_layer { 0 } else { layer_sizes.next().unwrap_or(0) };
            let created =
                entry.created.as_deref().and_then(parse_rfc3339).map_or("N/A".into(), |t| human_age(t, now));
            let mut by = entry.created_by.clone().unwrap_or_default();
            if !args.no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            vec![
                "<missing>".to_string(),
                created,
                by,
                human_size(size),
                entry.comment.clone().unwrap_or_default(),
            ]
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top[0] = if args.no_trunc { image.id().to_string() } else { image.id().hex()[..12].to_string() };
    }
    if args.quiet {
        for row in rows {
            println!("{}", row[0]);
        }
        return Ok(());
    }
    let mut table = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(String::from).to_vec()];
    table.extend(rows);
    print_table(&table);
    Ok(())
}

#[derive(clap::Args)]
pub struct SaveArgs {
    /// Write to this file instead of standard output
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Images, by name or ID
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn save(context: &Context, args: SaveArgs) -> Result<(), Failure> {
    let store = context.store()?;
    let _lock = store.lock(false).map_err(store_failure)?;
    let mut items: Vec<SaveItem> = Vec::new();
    for name in &args.images {
        let summary = store.resolve(name).map_err(store_failure)?;
        // A name saves that name; an ID saves the image without names.
        let names: Vec<Reference> = Reference::parse(name)
            .ok()
            .filter(|r| r.tag.is_some() && summary.names.contains(r))
            .into_iter()
            .collect();
        match items.iter_mut().find(|i| i.image.manifest_digest == summary.image.manifest_digest) {
            Some(item) => {
                for name in names {
                    if !item.names.contains(&name) {
                        item.names.push(name);
                    }
                }
            }
            None => items.push(SaveItem { image: summary.image, names }),
        }
    }
    match &args.output {
        None => {
            if io::stdout().is_terminal() {
                return Err(Failure::report(
                    "refusing to write an archive to a terminal; use -o FILE or redirect standard output",
                ));
            }
            let out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            archive::save(&store, &items, out).map_err(Failure::report)
        }
        Some(path) => {
            // Write beside the target and rename, so an interrupted save
            // never leaves a truncated archive under the final name.
            let dir =
                path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let temp = dir.join(format!(
                ".{}.hoist-{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("save"),
                std::process::id()
            ));
            let result = File::create(&temp)
                .map_err(|e| Failure::report(format!("cannot write {}: {e}", temp.display())))
                .and_then(|file| archive::save(&store, &items, file).map_err(Failure::report))
                .and_then(|()| {
                    fs::rename(&temp, path)
                        .map_err(|e| Failure::report(format!("cannot write {}: {e}", path.display())))
                });
            if result.is_err() {
                let _ = fs::remove_file(&temp);
            }
            result
        }
    }
}

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Read from this file instead of standard input
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Print nothing on success
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(context: &Context, args: LoadArgs) -> Result<(), Failure> {
    let store = context.store()?;
    let loaded = match &args.input {
        Some(path) => {
            let file = File::open(path)
                .map_err(|e| Failure::report(format!("cannot read {}: {e}", path.display())))?;
            archive::load(&store, BufReader::with_capacity(1 << 20, file))
        }
        None => {
            if io::stdin().is_terminal() {
                return Err(Failure::report(
                    "no archive on standard input; use -i FILE or pipe an archive in",
                ));
            }
            archive::load(&store, BufReader::with_capacity(1 << 20, io::stdin().lock()))
        }
    }
    .map_err(Failure::report)?;
    if !args.quiet {
        for image in loaded {
            if image.names.is_empty() {
                println!("Loaded image ID: {}", image.id);
            }
            for name in image.names {
                println!("Loaded image: {}", name.familiar());
            }
        }
    }
    Ok(())
}
