//! Parse throughput on a large Dockerfile: every BuildKit parser test case
//! concatenated, repeated to 1, 4 and 16 MiB. Equal MB/s across the sizes
//! shows that parsing is linear in input size.
//!
//!     cargo bench --bench parse

use std::fs;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist::dockerfile::{instructions, parse};

fn corpus() -> String {
    let dir = std::env::var_os("HOIST_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/conformance")));
    let dir = dir.join("buildkit/frontend/dockerfile/parser/testfiles");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path().join("Dockerfile"))
        .collect();
    cases.sort();
    let mut all = String::new();
    for case in cases {
        let text = fs::read_to_string(case).unwrap();
        // A case that ends in a continuation would swallow the next one.
        if text.trim_end().ends_with(['\\', '`']) {
            continue;
        }
        all.push_str(&text);
        all.push('\n');
    }
    all
}

fn bench(c: &mut Criterion) {
    let one = corpus();
    let mut group = c.benchmark_group("parse");
    for mib in [1usize, 4, 16] {
        let mut text = String::with_capacity(mib << 20);
        while text.len() < mib << 20 {
            text.push_str(&one);
        }
        let nodes = parse(&text).expect("corpus parses").nodes.len();
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.sample_size(10);
        group.bench_function(format!("{mib}MiB_{nodes}_instructions"), |b| b.iter(|| parse(&text).unwrap()));
        // Parse, then type every instruction (some cases are invalid on
        // purpose, so errors are counted, not fatal).
        group.bench_function(format!("{mib}MiB_parse_and_type"), |b| {
            b.iter(|| {
                parse(&text).unwrap().nodes.iter().filter(|n| instructions::instruction(n).is_ok()).count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
