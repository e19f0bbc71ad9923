//! Context open + digest on a generated 20,000-file, ~300 MB tree: cold (no
//! stat cache: every file read) and warm (cache saved by a previous build,
//! outside the racy window: nothing read).

use std::fs;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hoist::context::{Context, OpenOptions};

const FILES: usize = 20_000;
const FILES_PER_DIR: usize = 50;

/// Deterministic sizes averaging ~15 KB (300 MB in all), a few large files
/// among many small ones, as in a real source tree with assets.
fn generate(root: &Path) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let block: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
    fs::write(root.join(".dockerignore"), "**/*.tmp\n").unwrap();
    for i in 0..FILES {
        let dir = root.join(format!("pkg{:02}/mod{:03}", i / 2000, (i / FILES_PER_DIR) % 40));
        fs::create_dir_all(&dir).unwrap();
        let size = if i % 100 == 0 { 600_000 + next() % 300_000 } else { next() % 18_000 } as usize;
        let start = (next() % (block.len() as u64 - size as u64)) as usize;
        fs::write(dir.join(format!("file{i}.rs")), &block[start..start + size]).unwrap();
    }
}

fn open_and_digest(root: &Path, options: &OpenOptions) -> Context {
    let ctx = Context::open_with(root, Path::new("Dockerfile"), options).unwrap();
    let all = ctx.resolve(&[".".to_string()]).unwrap();
    std::hint::black_box(ctx.digest_of(&all).unwrap());
    ctx
}

fn context(c: &mut Criterion) {
    let tree = tempfile::TempDir::new().unwrap();
    let cache = tempfile::TempDir::new().unwrap();
    generate(tree.path());
    let cold = OpenOptions { cache_dir: None, ..OpenOptions::default() };
    let warm = OpenOptions { cache_dir: Some(cache.path().to_path_buf()), racy_margin: Duration::ZERO };
    open_and_digest(tree.path(), &warm).save_cache().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let check = open_and_digest(tree.path(), &warm);
    assert_eq!(check.stats().files_hashed, 0, "warm build must read nothing");
    let total: u64 = check.entries().iter().map(|e| e.size).sum();
    eprintln!("tree: {} entries, {} MB", check.stats().entries, total >> 20);

    let mut group = c.benchmark_group("context_20k_files");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("cold_open_and_digest", |b| b.iter(|| open_and_digest(tree.path(), &cold)));
    group.bench_function("warm_open_and_digest", |b| b.iter(|| open_and_digest(tree.path(), &warm)));
    group.bench_function("warm_open_only", |b| {
        b.iter(|| Context::open_with(tree.path(), Path::new("Dockerfile"), &warm).unwrap())
    });
    group.finish();
}

criterion_group!(benches, context);
criterion_main!(benches);
