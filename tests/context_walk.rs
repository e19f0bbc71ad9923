//! The context walk: what is in the context and in what order.

mod common;

use std::path::Path;

use common::tree::{symlink, write};
use hoist::context::{Context, EntryKind};
use tempfile::TempDir;

fn paths(ctx: &Context) -> Vec<&str> {
    ctx.entries().iter().map(|e| e.path.as_str()).collect()
}

fn open(root: &Path) -> Context {
    Context::open(root, Path::new("Dockerfile"), None).unwrap()
}

#[test]
fn ignored_files_are_absent() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "*.log\ntarget\n");
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), "app.log", "x");
    write(dir.path(), "src/main.rs", "fn main() {}");
    write(dir.path(), "target/debug/app", "bin");
    let ctx = open(dir.path());
    assert_eq!(paths(&ctx), [".dockerignore", "Dockerfile", "src", "src/main.rs"]);
}

#[test]
fn an_excluded_directory_without_exceptions_is_not_entered() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "node_modules\n");
    for i in 0..5 {
        write(dir.path(), &format!("node_modules/pkg{i}/index.js"), "x");
    }
    let ctx = open(dir.path());
    assert_eq!(ctx.stats().ignored, 1);
}

#[test]
fn an_exception_re_includes_a_file_inside_an_excluded_directory() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "docs\n!docs/README.md\n");
    write(dir.path(), "docs/README.md", "read me");
    write(dir.path(), "docs/internal.md", "secret");
    let ctx = open(dir.path());
    assert_eq!(paths(&ctx), [".dockerignore", "docs", "docs/README.md"]);
}

#[test]
fn an_exception_with_a_wildcard_reaches_into_excluded_directories() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "**\n!**/*.go\n");
    write(dir.path(), "cmd/app/main.go", "package main");
    write(dir.path(), "cmd/app/notes.txt", "x");
    let ctx = open(dir.path());
    assert!(paths(&ctx).contains(&"cmd/app/main.go"));
    assert!(!paths(&ctx).contains(&"cmd/app/notes.txt"));
}

#[test]
fn dockerfile_specific_ignore_file_takes_precedence() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "a.txt\n");
    write(dir.path(), "build/app.Dockerfile", "FROM scratch\n");
    write(dir.path(), "build/app.Dockerfile.dockerignore", "b.txt\n");
    write(dir.path(), "a.txt", "a");
    write(dir.path(), "b.txt", "b");
    let ctx = Context::open(dir.path(), Path::new("build/app.Dockerfile"), None).unwrap();
    assert!(paths(&ctx).contains(&"a.txt"));
    assert!(!paths(&ctx).contains(&"b.txt"));
    assert!(ctx.ignore_file().unwrap().ends_with("build/app.Dockerfile.dockerignore"));
}

#[test]
fn an_excluded_dockerfile_and_ignore_file_are_not_copied() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "*\n");
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), "other", "x");
    let ctx = open(dir.path());
    assert!(paths(&ctx).is_empty(), "{:?}", paths(&ctx));
}

#[test]
fn symlinks_are_recorded_and_not_followed() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "real/file", "x");
    symlink(dir.path(), "link", "real");
    symlink(dir.path(), "outside", "/etc");
    let ctx = open(dir.path());
    assert_eq!(paths(&ctx), ["link", "outside", "real", "real/file"]);
    let link = ctx.entry("link").unwrap();
    assert_eq!(link.kind, EntryKind::Symlink { target: "real".into() });
}

#[test]
fn entries_are_in_tree_order() {
    let dir = TempDir::new().unwrap();
    for rel in ["a.txt", "a/b", "a-c", "b", "a/a/z"] {
        write(dir.path(), rel, "x");
    }
    let ctx = open(dir.path());
    assert_eq!(paths(&ctx), ["a", "a/a", "a/a/z", "a/b", "a-c", "a.txt", "b"]);
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nope");
    let err = Context::open(&missing, Path::new("Dockerfile"), None).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn a_malformed_ignore_pattern_is_an_error_naming_the_file() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "[\n");
    let err = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap_err();
    assert!(err.to_string().contains(".dockerignore"), "{err}");
}

#[test]
fn walking_a_directory_selection_yields_it_first_then_its_contents_relative_to_it() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "app/src/main.rs", "x");
    write(dir.path(), "app/Cargo.toml", "x");
    write(dir.path(), "app.txt", "x");
    let ctx = open(dir.path());
    let selection = ctx.resolve(&["app".to_string()]).unwrap();
    let walked: Vec<(String, bool)> = ctx
        .walk_selection(&selection[0])
        .map(|e| {
            (e.relative.to_string(), e.absolute == dir.path().canonicalize().unwrap().join(&e.entry.path))
        })
        .collect();
    let relative: Vec<&str> = walked.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(relative, ["", "Cargo.toml", "src", "src/main.rs"]);
    assert!(walked.iter().all(|(_, abs)| *abs));
}
