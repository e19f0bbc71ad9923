//! The build cache: a no-op rebuild runs nothing and reads no unchanged
//! context file; an mtime-only touch is a hit; a change misses exactly the
//! steps that depend on it; a content change that keeps size and mtime
//! still misses (racily clean files are re-read, as git does); --no-cache
//! misses everything.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{busybox_rootfs, hoist_ok};
use hoist::build::{BuildContext, BuildRequest};
use hoist::image::reference::Reference;
use hoist::progress::{self, Mode};
use hoist::store::Store;

/// (steps run, steps cached, context files read) of a build of `dir` into
/// the store at `root`, through the library's entry point.
fn build_with(
    root: &Path,
    dir: &Path,
    mode: Mode,
    configure: impl FnOnce(&mut BuildRequest),
) -> (usize, usize, u64) {
    let store = Store::open(root).unwrap();
    let mut request = BuildRequest::new(BuildContext::Dir(dir.to_path_buf()));
    request.tags = vec![Reference::parse("cached:test").unwrap()];
    configure(&mut request);
    let progress = progress::renderer(mode, Box::new(std::io::sink()), false);
    let built =
        hoist::build(&store, &request, progress.as_ref()).unwrap_or_else(|e| panic!("build failed: {e}"));
    progress.finish();
    (built.executed, built.cached, built.context_files_hashed)
}

fn build(root: &Path, dir: &Path, configure: impl FnOnce(&mut BuildRequest)) -> (usize, usize, u64) {
    build_with(root, dir, Mode::Plain, configure)
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
    let (run, _, read) = build(&s.root, &s.context, |_| {});
    assert_eq!(run, 5, "a first build runs every layer step");
    assert_eq!(read, 52, "a first build reads every context file");
    let (run, cached, read) = build(&s.root, &s.context, |_| {});
    assert_eq!((run, cached, read), (0, 5, 0));
}

#[test]
fn touching_a_file_without_changing_it_is_still_a_hit() {
    let s = setup();
    build(&s.root, &s.context, |_| {});
    let later = filetime_now_plus(&s.context.join("a.txt"));
    assert!(later);
    let (run, cached, _) = build(&s.root, &s.context, |_| {});
    assert_eq!((run, cached), (0, 5));
}

fn filetime_now_plus(path: &Path) -> bool {
    std::process::Command::new("touch").arg("-d").arg("+1 hour").arg(path).status().unwrap().success()
}

#[test]
fn changing_one_file_misses_only_the_steps_that_depend_on_it() {
    let s = setup();
    build(&s.root, &s.context, |_| {});
    fs::write(s.context.join("b.txt"), "bravo two\n").unwrap();
    let (run, cached, read) = build(&s.root, &s.context, |_| {});
    assert_eq!((run, cached), (2, 3), "COPY b.txt and the RUN after it run again");
    assert_eq!(read, 1, "only the changed file is read");
}

#[test]
fn a_change_that_keeps_size_and_mtime_still_misses() {
    let s = setup();
    build(&s.root, &s.context, |_| {});
    let a = s.context.join("a.txt");
    let reference = s.context.join("reference");
    std::process::Command::new("touch").arg("-r").arg(&a).arg(&reference).status().unwrap();
    fs::write(&a, "ALPHA\n").unwrap();
    std::process::Command::new("touch").arg("-r").arg(&reference).arg(&a).status().unwrap();
    fs::remove_file(&reference).unwrap();
    let (run, _, _) = build(&s.root, &s.context, |_| {});
    assert_eq!(run, 5, "the content changed: COPY a.txt and everything after it run");
}

#[test]
fn no_cache_runs_every_step() {
    let s = setup();
    build(&s.root, &s.context, |_| {});
    let (run, cached, _) = build(&s.root, &s.context, |r| r.no_cache = true);
    assert_eq!((run, cached), (5, 0));
}

#[test]
fn how_progress_is_shown_changes_no_key() {
    let s = setup();
    build_with(&s.root, &s.context, Mode::Json, |_| {});
    let (run, cached, _) = build_with(&s.root, &s.context, Mode::Quiet, |_| {});
    assert_eq!((run, cached), (0, 5));
}

#[test]
fn comments_and_blank_lines_change_no_key() {
    let s = setup();
    build(&s.root, &s.context, |_| {});
    let dockerfile = s.context.join("Dockerfile");
    let text = fs::read_to_string(&dockerfile).unwrap().replace("\nRUN", "\n# why\n\nRUN");
    fs::write(&dockerfile, format!("# syntax is not needed\n{text}")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let (run, cached, _) = build(&s.root, &s.context, |_| {});
    assert_eq!((run, cached), (0, 5));
}

#[test]
fn a_build_arg_misses_only_the_steps_that_use_it() {
    let s = setup();
    let dockerfile = s.context.join("Dockerfile");
    let text = fs::read_to_string(&dockerfile).unwrap().replace("COPY b.txt", "ARG V\nCOPY b.txt");
    fs::write(&dockerfile, text).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let with = |value: &'static str| {
        move |r: &mut BuildRequest| {
            r.build_args.insert("V".into(), value.into());
            r.build_args.insert("UNUSED".into(), value.into());
        }
    };
    build(&s.root, &s.context, with("1"));
    // COPY b.txt does not use V; the RUN after it sees V in its environment.
    let (run, cached, _) = build(&s.root, &s.context, with("2"));
    assert_eq!((run, cached), (1, 4));
    let (run, cached, _) = build(&s.root, &s.context, with("2"));
    assert_eq!((run, cached), (0, 5), "UNUSED is in no key");
}
