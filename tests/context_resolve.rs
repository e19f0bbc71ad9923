//! COPY/ADD sources resolved against the context.

mod common;

use std::path::Path;

use common::tree::{symlink, write};
use hoist::context::{Context, ContextError};
use tempfile::TempDir;

fn context(files: &[&str]) -> (TempDir, Context) {
    let dir = TempDir::new().unwrap();
    for rel in files {
        write(dir.path(), rel, rel);
    }
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    (dir, ctx)
}

fn resolved(ctx: &Context, sources: &[&str]) -> Vec<String> {
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    ctx.resolve(&sources).unwrap().into_iter().map(|s| s.resolved).collect()
}

fn resolve_err(ctx: &Context, source: &str) -> ContextError {
    ctx.resolve(&[source.to_string()]).unwrap_err()
}

#[test]
fn an_exact_file_selects_itself() {
    let (_dir, ctx) = context(&["app/main.go"]);
    let selection = &ctx.resolve(&["app/main.go".to_string()]).unwrap()[0];
    assert_eq!(selection.path, "app/main.go");
    assert!(!selection.is_dir);
}

#[test]
fn a_directory_selects_itself() {
    let (_dir, ctx) = context(&["app/main.go"]);
    let selection = &ctx.resolve(&["app/".to_string()]).unwrap()[0];
    assert_eq!(selection.resolved, "app");
    assert!(selection.is_dir);
}

#[test]
fn dot_selects_the_whole_context() {
    let (_dir, ctx) = context(&["a"]);
    let selection = &ctx.resolve(&[".".to_string()]).unwrap()[0];
    assert_eq!(selection.resolved, "");
    assert!(selection.is_dir);
}

#[test]
fn leading_slash_and_dot_slash_are_relative_to_the_root() {
    let (_dir, ctx) = context(&["a/b.txt"]);
    assert_eq!(resolved(&ctx, &["/a/b.txt", "./a/b.txt", "a//b.txt"]), ["a/b.txt"; 3]);
}

#[test]
fn a_source_escaping_the_context_is_clamped_to_the_root() {
    let (_dir, ctx) = context(&["x"]);
    assert_eq!(resolved(&ctx, &["../x", "../../a/../x"]), ["x", "x"]);
}

#[test]
fn a_star_matches_within_one_component() {
    let (_dir, ctx) = context(&["a.txt", "b.txt", "c.md", "sub/d.txt"]);
    assert_eq!(resolved(&ctx, &["*.txt"]), ["a.txt", "b.txt"]);
}

#[test]
fn a_character_class_matches_one_of_its_characters() {
    let (_dir, ctx) = context(&["a1.txt", "b2.txt", "c3.txt"]);
    assert_eq!(resolved(&ctx, &["[ab]*.txt"]), ["a1.txt", "b2.txt"]);
}

#[test]
fn wildcards_match_in_directory_components() {
    let (_dir, ctx) = context(&["cmd/a/main.go", "cmd/b/main.go", "cmd/b/util.go"]);
    assert_eq!(resolved(&ctx, &["cmd/*/main.go"]), ["cmd/a/main.go", "cmd/b/main.go"]);
}

#[test]
fn an_escaped_star_in_a_wildcard_source_is_literal() {
    let (_dir, ctx) = context(&["a*b", "axb"]);
    assert_eq!(resolved(&ctx, &["a\\*[b]"]), ["a*b"]);
}

#[test]
fn a_missing_source_suggests_similar_paths() {
    let (_dir, ctx) = context(&["app/main.go", "app/go.mod"]);
    let err = resolve_err(&ctx, "app/mian.go");
    let text = err.to_string();
    assert!(text.contains("stat app/mian.go"), "{text}");
    assert!(text.contains("did you mean app/main.go?"), "{text}");
}

#[test]
fn a_missing_source_suggests_the_same_name_elsewhere() {
    let (_dir, ctx) = context(&["cmd/server/main.go"]);
    let ContextError::SourceNotFound { suggestions, .. } = resolve_err(&ctx, "main.go") else { panic!() };
    assert_eq!(suggestions, ["cmd/server/main.go"]);
}

#[test]
fn a_wildcard_matching_nothing_is_an_error() {
    let (_dir, ctx) = context(&["a.txt"]);
    assert!(matches!(resolve_err(&ctx, "*.md"), ContextError::SourceNotFound { .. }));
}

#[test]
fn an_ignored_file_is_not_found_and_the_error_says_why() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "secret.env\n");
    write(dir.path(), "secret.env", "TOKEN=1");
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    let err = resolve_err(&ctx, "secret.env");
    assert!(
        matches!(&err, ContextError::SourceNotFound { excluded_by: Some(f), .. } if f == ".dockerignore")
    );
    assert!(err.to_string().contains("excluded by .dockerignore"), "{err}");
}

#[test]
fn a_trailing_slash_on_a_file_is_an_error() {
    let (_dir, ctx) = context(&["a.txt"]);
    assert!(matches!(resolve_err(&ctx, "a.txt/"), ContextError::SourceNotADirectory { .. }));
}

#[test]
fn a_malformed_wildcard_is_an_error() {
    let (_dir, ctx) = context(&["a"]);
    assert!(matches!(resolve_err(&ctx, "[a"), ContextError::SourcePattern { .. }));
}

#[test]
fn a_symlink_source_is_followed_inside_the_context() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "real/config.yml", "x");
    symlink(dir.path(), "current", "real");
    symlink(dir.path(), "cfg", "/current/config.yml");
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    assert_eq!(
        resolved(&ctx, &["current", "current/config.yml", "cfg"]),
        ["real", "real/config.yml", "real/config.yml"]
    );
}

#[test]
fn a_symlink_pointing_out_of_the_context_stays_inside_it() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "etc/hostname", "inside");
    symlink(dir.path(), "escape", "../../../../etc/hostname");
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    assert_eq!(resolved(&ctx, &["escape"]), ["etc/hostname"]);
}

#[test]
fn a_symlink_loop_is_an_error() {
    let dir = TempDir::new().unwrap();
    symlink(dir.path(), "a", "b");
    symlink(dir.path(), "b", "a");
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    assert!(matches!(resolve_err(&ctx, "a"), ContextError::SymlinkLoop { .. }));
}

#[test]
fn a_wildcard_match_on_a_symlink_is_not_followed() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "real.txt", "x");
    symlink(dir.path(), "link.txt", "real.txt");
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    assert_eq!(resolved(&ctx, &["l*.txt"]), ["link.txt"]);
}

#[test]
fn a_plain_missing_file_is_not_blamed_on_the_ignore_file() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), ".dockerignore", "*.env\n");
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    assert!(matches!(resolve_err(&ctx, "nope.txt"), ContextError::SourceNotFound { excluded_by: None, .. }));
}

#[test]
fn sources_resolve_in_order() {
    let (_dir, ctx) = context(&["b", "a"]);
    assert_eq!(resolved(&ctx, &["b", "a"]), ["b", "a"]);
}
