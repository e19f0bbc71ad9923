//! The build cache: a no-op rebuild runs nothing and reads no unchanged
//! context file; an mtime-only touch is a hit; a change misses exactly the
//! steps that depend on it; a content change that keeps size and mtime
//! still misses (racily clean files are re-read, as git does); --no-cache
//! misses everything.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{busybox_rootfs, hoist, hoist_ok};

/// (steps run, steps cached, context files read) from the build summary.
fn counts(stderr: &str) -> (usize, usize, usize) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("built "))
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect::<Vec<_>>();
    // "built sha256:… (R steps run, C cached, F context files read)"
    let n = numbers.len();
    (numbers[n - 3], numbers[n - 2], numbers[n - 1])
}

fn build(root: &Path, dir: &Path, extra: &[&str]) -> (usize, usize, usize) {
    let mut args = vec!["build", "--progress", "plain", "-t", "cached:test"];
    args.extend_from_slice(extra);
    let dir = dir.to_str().unwrap();
    args.push(dir);
    let out = hoist(root, &args);
    let stderr = common::stderr(&out);
    assert!(out.status.success(), "build failed:\n{stderr}");
    counts(&stderr)
}

struct Setup {
    _work: tempfile::TempDir,
    root: std::path::PathBuf,
    context: std::path::PathBuf,
}

fn setup() -> Setup {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    hoist_ok(&root, &["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    let context = work.path().join("context");
    fs::create_dir_all(context.join("many")).unwrap();
    fs::write(
        context.join("Dockerfile"),
        "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /a-copy.txt\nCOPY many /many\nCOPY b.txt /b.txt\nRUN cat /b.txt > /b-copy.txt\n",
    )
    .unwrap();
    fs::write(context.join("a.txt"), "alpha\n").unwrap();
    fs::write(context.join("b.txt"), "bravo\n").unwrap();
    for i in 0..50 {
        fs::write(context.join(format!("many/{i}.txt")), format!("{i}\n")).unwrap();
    }
    // Files written in the last moments are racily clean and always
    // re-read; let the context age past that window.
    std::thread::sleep(Duration::from_millis(2500));
    Setup { _work: work, root, context }
}

#[test]
fn a_no_op_rebuild_runs_nothing_and_reads_no_file() {
    let s = setup();
    let (run, _, read) = build(&s.root, &s.context, &[]);
    assert_eq!(run, 5, "a first build runs every layer step");
    assert_eq!(read, 52, "a first build reads every context file");
    let (run, cached, read) = build(&s.root, &s.context, &[]);
    assert_eq!((run, cached, read), (0, 5, 0));
}

#[test]
fn touching_a_file_without_changing_it_is_still_a_hit() {
    let s = setup();
    build(&s.root, &s.context, &[]);
    let later = filetime_now_plus(&s.context.join("a.txt"));
    assert!(later);
    let (run, cached, _) = build(&s.root, &s.context, &[]);
    assert_eq!((run, cached), (0, 5));
}

fn filetime_now_plus(path: &Path) -> bool {
    std::process::Command::new("touch").arg("-d").arg("+1 hour").arg(path).status().unwrap().success()
}

#[test]
fn changing_one_file_misses_only_the_steps_that_depend_on_it() {
    let s = setup();
    build(&s.root, &s.context, &[]);
    fs::write(s.context.join("b.txt"), "bravo two\n").unwrap();
    let (run, cached, read) = build(&s.root, &s.context, &[]);
    assert_eq!((run, cached), (2, 3), "COPY b.txt and the RUN after it run again");
    assert_eq!(read, 1, "only the changed file is read");
}

#[test]
fn a_change_that_keeps_size_and_mtime_still_misses() {
    let s = setup();
    build(&s.root, &s.context, &[]);
    let a = s.context.join("a.txt");
    let reference = s.context.join("reference");
    std::process::Command::new("touch").arg("-r").arg(&a).arg(&reference).status().unwrap();
    fs::write(&a, "ALPHA\n").unwrap();
    std::process::Command::new("touch").arg("-r").arg(&reference).arg(&a).status().unwrap();
    fs::remove_file(&reference).unwrap();
    let (run, _, _) = build(&s.root, &s.context, &[]);
    assert_eq!(run, 5, "the content changed: COPY a.txt and everything after it run");
}

#[test]
fn no_cache_runs_every_step() {
    let s = setup();
    build(&s.root, &s.context, &[]);
    let (run, cached, _) = build(&s.root, &s.context, &["--no-cache"]);
    assert_eq!((run, cached), (5, 0));
}
