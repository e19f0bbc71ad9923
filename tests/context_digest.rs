//! Selection digests: what changes them and what does not.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::tree::{chmod, set_mtime, symlink, write};
use hoist::context::Context;
use tempfile::TempDir;

fn digest(root: &Path, sources: &[&str]) -> blake3::Hash {
    let ctx = Context::open(root, Path::new("Dockerfile"), None).unwrap();
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    ctx.digest_of(&ctx.resolve(&sources).unwrap()).unwrap()
}

fn project() -> TempDir {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "src/main.rs", "fn main() {}");
    write(dir.path(), "src/lib.rs", "pub fn f() {}");
    write(dir.path(), "README.md", "hello");
    dir
}

#[test]
fn same_content_gives_the_same_digest_whatever_the_mtime() {
    let (a, b) = (project(), project());
    set_mtime(b.path(), "src/main.rs", SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    assert_eq!(digest(a.path(), &["src"]), digest(b.path(), &["src"]));
}

#[test]
fn a_content_change_changes_the_digest() {
    let dir = project();
    let before = digest(dir.path(), &["src"]);
    write(dir.path(), "src/main.rs", "fn main() { }");
    assert_ne!(before, digest(dir.path(), &["src"]));
}

#[test]
fn a_mode_change_changes_the_digest() {
    let dir = project();
    let before = digest(dir.path(), &["src"]);
    chmod(dir.path(), "src/main.rs", 0o755);
    assert_ne!(before, digest(dir.path(), &["src"]));
}

#[test]
fn a_rename_changes_the_digest() {
    let dir = project();
    let before = digest(dir.path(), &["src"]);
    std::fs::rename(dir.path().join("src/lib.rs"), dir.path().join("src/lib2.rs")).unwrap();
    assert_ne!(before, digest(dir.path(), &["src"]));
}

#[test]
fn a_symlink_target_change_changes_the_digest() {
    let dir = project();
    symlink(dir.path(), "src/link", "main.rs");
    let before = digest(dir.path(), &["src"]);
    std::fs::remove_file(dir.path().join("src/link")).unwrap();
    symlink(dir.path(), "src/link", "lib.rs");
    assert_ne!(before, digest(dir.path(), &["src"]));
}

#[test]
fn a_file_outside_the_selection_does_not_change_the_digest() {
    let dir = project();
    let before = digest(dir.path(), &["src"]);
    write(dir.path(), "README.md", "changed");
    write(dir.path(), "src.txt", "new sibling");
    assert_eq!(before, digest(dir.path(), &["src"]));
}

#[test]
fn an_ignored_file_inside_the_selection_does_not_change_the_digest() {
    let dir = project();
    write(dir.path(), ".dockerignore", "**/*.tmp\n");
    let before = digest(dir.path(), &["src"]);
    write(dir.path(), "src/scratch.tmp", "noise");
    assert_eq!(before, digest(dir.path(), &["src"]));
}

#[test]
fn the_selected_paths_are_part_of_the_digest() {
    let dir = project();
    write(dir.path(), "copy.rs", "fn main() {}");
    assert_ne!(digest(dir.path(), &["src/main.rs"]), digest(dir.path(), &["copy.rs"]));
}

#[test]
fn only_selected_files_are_read() {
    let dir = project();
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    ctx.digest_of(&ctx.resolve(&["src/main.rs".to_string()]).unwrap()).unwrap();
    assert_eq!(ctx.stats().files_hashed, 1);
    assert_eq!(ctx.stats().bytes_hashed, "fn main() {}".len() as u64);
}

#[test]
fn overlapping_sources_read_each_file_once() {
    let dir = project();
    let ctx = Context::open(dir.path(), Path::new("Dockerfile"), None).unwrap();
    let sources = ["src".to_string(), "src/main.rs".to_string(), "src".to_string()];
    ctx.digest_of(&ctx.resolve(&sources).unwrap()).unwrap();
    assert_eq!(ctx.stats().files_hashed, 2);
}
