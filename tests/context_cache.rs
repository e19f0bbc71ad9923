//! The stat cache: unchanged files are not read again; changed ones are.

mod common;

use std::path::Path;
use std::time::Duration;

use common::tree::{mtime, set_mtime, settle, write};
use hoist::context::{Context, ContextStats, OpenOptions};
use tempfile::TempDir;

struct Fixture {
    context: TempDir,
    cache: TempDir,
}

impl Fixture {
    fn new(files: usize) -> Fixture {
        let context = TempDir::new().unwrap();
        for i in 0..files {
            write(context.path(), &format!("dir{}/file{i}.txt", i % 3), &format!("content {i}"));
        }
        settle();
        Fixture { context, cache: TempDir::new().unwrap() }
    }

    /// Opens with the cache, digests the whole context, saves the cache.
    fn build(&self, racy_margin: Duration) -> (blake3::Hash, ContextStats) {
        let options = OpenOptions { cache_dir: Some(self.cache.path().to_path_buf()), racy_margin };
        let ctx = Context::open_with(self.context.path(), Path::new("Dockerfile"), &options).unwrap();
        let digest = ctx.digest_of(&ctx.resolve(&[".".to_string()]).unwrap()).unwrap();
        ctx.save_cache().unwrap();
        settle();
        (digest, ctx.stats())
    }
}

const NO_MARGIN: Duration = Duration::ZERO;

#[test]
fn a_no_op_rebuild_reads_no_file() {
    let fixture = Fixture::new(12);
    let (first, stats) = fixture.build(NO_MARGIN);
    assert_eq!(stats.files_hashed, 12);
    let (second, stats) = fixture.build(NO_MARGIN);
    assert_eq!((stats.files_hashed, stats.files_from_cache), (0, 12));
    assert_eq!(first, second);
}

#[test]
fn changing_one_file_rereads_only_that_file() {
    let fixture = Fixture::new(12);
    let (first, _) = fixture.build(NO_MARGIN);
    write(fixture.context.path(), "dir1/file4.txt", "changed");
    settle();
    let (second, stats) = fixture.build(NO_MARGIN);
    assert_eq!(stats.files_hashed, 1);
    assert_ne!(first, second);
}

#[test]
fn a_touched_file_is_reread_and_keeps_its_digest() {
    let fixture = Fixture::new(3);
    let (first, _) = fixture.build(NO_MARGIN);
    let later = mtime(fixture.context.path(), "dir0/file0.txt") + Duration::from_secs(5);
    set_mtime(fixture.context.path(), "dir0/file0.txt", later);
    settle();
    let (second, stats) = fixture.build(NO_MARGIN);
    assert_eq!(stats.files_hashed, 1);
    assert_eq!(first, second);
}

#[test]
fn a_same_size_rewrite_with_the_old_mtime_is_caught() {
    let fixture = Fixture::new(3);
    let file = "dir0/file0.txt";
    let (first, _) = fixture.build(Duration::from_secs(2));
    let old_mtime = mtime(fixture.context.path(), file);
    write(fixture.context.path(), file, "CONTENT 0");
    set_mtime(fixture.context.path(), file, old_mtime);
    let (second, _) = fixture.build(Duration::from_secs(2));
    assert_ne!(first, second);
}

#[test]
fn a_racily_clean_file_is_not_trusted() {
    // Written within the margin of the scan that hashed it: its stat fields
    // cannot prove it did not change afterwards within the same tick.
    let fixture = Fixture::new(2);
    fixture.build(Duration::from_secs(2));
    let (_, stats) = fixture.build(Duration::from_secs(2));
    assert_eq!((stats.files_hashed, stats.files_from_cache), (2, 0));
}

#[test]
fn trusted_digests_survive_a_rebuild_that_reads_nothing() {
    let fixture = Fixture::new(4);
    fixture.build(NO_MARGIN);
    let options = OpenOptions { cache_dir: Some(fixture.cache.path().to_path_buf()), racy_margin: NO_MARGIN };
    let ctx = Context::open_with(fixture.context.path(), Path::new("Dockerfile"), &options).unwrap();
    ctx.save_cache().unwrap();
    settle();
    let (_, stats) = fixture.build(NO_MARGIN);
    assert_eq!(stats.files_hashed, 0);
}

#[test]
fn a_corrupt_cache_is_ignored() {
    let fixture = Fixture::new(3);
    let (first, _) = fixture.build(NO_MARGIN);
    for entry in std::fs::read_dir(fixture.cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let (second, stats) = fixture.build(NO_MARGIN);
    assert_eq!(stats.files_hashed, 3);
    assert_eq!(first, second);
}

#[test]
fn a_context_without_cache_dir_hashes_every_time() {
    let fixture = Fixture::new(3);
    for _ in 0..2 {
        let ctx = Context::open(fixture.context.path(), Path::new("Dockerfile"), None).unwrap();
        ctx.digest_of(&ctx.resolve(&[".".to_string()]).unwrap()).unwrap();
        ctx.save_cache().unwrap();
        assert_eq!(ctx.stats().files_hashed, 3);
    }
}
