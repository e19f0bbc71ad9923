//! `hoist build` as a user drives it: outputs, quiet and iidfile, contexts
//! and Dockerfiles on standard input, errors that point at the line, the
//! target stage, unused build args, and stages running at the same time.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{busybox_rootfs, hoist, hoist_ok, run_ok};

struct Setup {
    work: tempfile::TempDir,
    root: PathBuf,
}

fn setup() -> Setup {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    hoist_ok(&root, &["import", "--change", "CMD [\"sh\"]", rootfs.to_str().unwrap(), "busybox:latest"]);
    Setup { work, root }
}

fn context(s: &Setup, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = s.work.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (path, content) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    dir
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/build").join(name).to_string_lossy().into_owned()
}

#[test]
fn quiet_prints_only_the_image_id_and_iidfile_records_it() {
    let s = setup();
    let iid = s.work.path().join("iid");
    let out = hoist_ok(
        &s.root,
        &["build", "-q", "--iidfile", iid.to_str().unwrap(), "-t", "q:1", &fixture("run-basic")],
    );
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out:?}");
    assert_eq!(fs::read_to_string(&iid).unwrap(), id);
    let inspected = hoist_ok(&s.root, &["inspect", "q:1"]);
    assert!(inspected.contains(id));
}

#[test]
fn outputs_write_a_loadable_archive_a_directory_and_a_rootfs_tar() {
    let s = setup();
    let archive = s.work.path().join("image.tar");
    let dir = s.work.path().join("fs");
    let rootfs = s.work.path().join("rootfs.tar");
    hoist_ok(
        &s.root,
        &[
            "build",
            "--progress",
            "quiet",
            "-t",
            "out:1",
            "-o",
            &format!("type=docker,dest={}", archive.display()),
            "-o",
            &format!("type=tar,dest={}", rootfs.display()),
            "-o",
            dir.to_str().unwrap(),
            &fixture("run-basic"),
        ],
    );
    assert_eq!(fs::read_to_string(dir.join("hello.txt")).unwrap(), "hello\n");
    let listing = run_ok(Command::new("tar").arg("-tf").arg(&rootfs));
    assert!(listing.lines().any(|l| l.trim_start_matches("./") == "exec.txt"), "{listing}");
    let other = s.work.path().join("other-store");
    let loaded = hoist_ok(&other, &["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: out:1"), "{loaded}");
    // The same archive is an OCI layout skopeo reads.
    run_ok(Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}", archive.display())));
}

#[test]
fn a_tar_context_and_a_dockerfile_on_standard_input_work() {
    let s = setup();
    let dir = context(&s, "stdin", "FROM busybox\nCOPY file.txt /file.txt\n", &[("file.txt", "from tar\n")]);
    let tarball = run_ok_bytes(Command::new("tar").arg("-C").arg(&dir).arg("-cf").arg("-").arg("."));
    let out = hoist_stdin(
        &s.root,
        &["build", "-q", "-o", s.work.path().join("a").to_str().unwrap(), "-"],
        &tarball,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(fs::read_to_string(s.work.path().join("a/file.txt")).unwrap(), "from tar\n");

    let out = hoist_stdin(
        &s.root,
        &["build", "-q", "-f", "-", "-o", s.work.path().join("b").to_str().unwrap(), dir.to_str().unwrap()],
        b"FROM busybox\nCOPY file.txt /via-stdin.txt\n",
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(s.work.path().join("b/via-stdin.txt").exists());
}

fn run_ok_bytes(command: &mut Command) -> Vec<u8> {
    let out = command.output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn hoist_stdin(root: &Path, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(common::hoist_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_failing_run_reports_its_line_exit_code_and_output() {
    let s = setup();
    let dir = context(
        &s,
        "fails",
        "FROM busybox\nRUN echo first\nRUN echo some output; echo oops >&2; exit 3\nRUN echo never\n",
        &[],
    );
    let out = hoist(&s.root, &["build", "--progress", "plain", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = common::stderr(&out);
    assert!(stderr.contains("Dockerfile:3"), "{stderr}");
    assert!(stderr.contains("exit code: 3"), "{stderr}");
    assert!(stderr.contains("oops"), "{stderr}");
    assert!(!stderr.contains("never\n#"), "{stderr}");
}

#[test]
fn a_missing_copy_source_suggests_similar_paths() {
    let s = setup();
    let dir = context(
        &s,
        "missing",
        "FROM busybox\nCOPY app/mian.go /src/\n",
        &[("app/main.go", "package main\n")],
    );
    let out = hoist(&s.root, &["build", "--progress", "plain", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = common::stderr(&out);
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
    assert!(stderr.contains("app/main.go"), "{stderr}");
}

#[test]
fn unused_build_args_are_warned_about() {
    let s = setup();
    let out = hoist(
        &s.root,
        &["build", "--progress", "plain", "--build-arg", "NOBODY_USES=1", &fixture("run-basic")],
    );
    assert!(out.status.success());
    assert!(common::stderr(&out).contains("NOBODY_USES"), "{}", common::stderr(&out));
}

#[test]
fn stages_the_target_does_not_need_are_not_built() {
    let s = setup();
    // The `unwanted` stage fails if it runs.
    let out =
        hoist(&s.root, &["build", "--progress", "plain", "--target", "final", &fixture("target-stage")]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out =
        hoist(&s.root, &["build", "--progress", "plain", "--target", "unwanted", &fixture("target-stage")]);
    assert!(!out.status.success());
}

/// Each stage records when it ran; four independent stages all overlap
/// unless --jobs 1 serialises them.
fn stage_intervals(s: &Setup, jobs: &str) -> Vec<(f64, f64)> {
    let mut dockerfile = String::new();
    for name in ["a", "b", "c", "d"] {
        dockerfile.push_str(&format!(
            "FROM busybox AS {name}\nRUN cat /proc/uptime | cut -d' ' -f1 > /start && sleep 1 && cat /proc/uptime | cut -d' ' -f1 > /end\n"
        ));
    }
    dockerfile.push_str("FROM busybox\n");
    for name in ["a", "b", "c", "d"] {
        dockerfile.push_str(&format!(
            "COPY --from={name} /start /{name}.start\nCOPY --from={name} /end /{name}.end\n"
        ));
    }
    let dir = context(s, &format!("parallel-{jobs}"), &dockerfile, &[]);
    let dest = s.work.path().join(format!("parallel-{jobs}-fs"));
    hoist_ok(
        &s.root,
        &["build", "--no-cache", "-q", "--jobs", jobs, "-o", dest.to_str().unwrap(), dir.to_str().unwrap()],
    );
    ["a", "b", "c", "d"]
        .iter()
        .map(|n| {
            let read = |ext: &str| {
                fs::read_to_string(dest.join(format!("{n}.{ext}"))).unwrap().trim().parse::<f64>().unwrap()
            };
            (read("start"), read("end"))
        })
        .collect()
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let s = setup();
    let intervals = stage_intervals(&s, "4");
    let latest_start = intervals.iter().map(|i| i.0).fold(f64::MIN, f64::max);
    let earliest_end = intervals.iter().map(|i| i.1).fold(f64::MAX, f64::min);
    assert!(latest_start < earliest_end, "all four stages were running at once: {intervals:?}");
    let serial = stage_intervals(&s, "1");
    let latest_start = serial.iter().map(|i| i.0).fold(f64::MIN, f64::max);
    let earliest_end = serial.iter().map(|i| i.1).fold(f64::MAX, f64::min);
    assert!(latest_start >= earliest_end, "--jobs 1 runs one stage at a time: {serial:?}");
}

#[test]
fn onbuild_triggers_run_when_the_image_is_used_in_from() {
    let s = setup();
    hoist_ok(&s.root, &["build", "-q", "-t", "with-triggers:1", &fixture("onbuild")]);
    let dir = context(
        &s,
        "child",
        "FROM with-triggers:1\nRUN echo child > /child.txt\n",
        &[("file.txt", "from the child\n")],
    );
    let dest = s.work.path().join("child-fs");
    hoist_ok(&s.root, &["build", "-q", "-t", "child:1", "-o", dest.to_str().unwrap(), dir.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(dest.join("trigger.txt")).unwrap(), "triggered\n");
    assert_eq!(fs::read_to_string(dest.join("from-trigger.txt")).unwrap(), "from the child\n");
    let inspected = hoist_ok(&s.root, &["inspect", "child:1"]);
    assert!(!inspected.contains("OnBuild"), "triggers are not inherited: {inspected}");
}

#[test]
fn labels_from_the_command_line_are_added() {
    let s = setup();
    hoist_ok(
        &s.root,
        &["build", "-q", "--label", "team=infra", "--label", "tier=", "-t", "lab:1", &fixture("metadata")],
    );
    let config = hoist_ok(&s.root, &["inspect", "lab:1"]);
    let value: serde_json::Value = serde_json::from_str(&config).unwrap();
    let value = if value.is_array() { value[0].clone() } else { value };
    let labels = &value["Config"]["Labels"];
    assert_eq!(labels["team"], "infra");
    assert_eq!(labels["tier"], "");
    assert_eq!(labels["a"], "overridden", "Dockerfile labels stay");
}

#[test]
fn a_failed_stage_cancels_the_others_and_leaves_nothing_running() {
    let s = setup();
    let dir = context(
        &s,
        "cancel",
        "FROM busybox AS slow\nRUN sleep 60\nFROM busybox AS failing\nRUN sleep 0.3; exit 1\nFROM busybox\nCOPY --from=slow /etc/passwd /a\nCOPY --from=failing /etc/passwd /b\n",
        &[],
    );
    let started = std::time::Instant::now();
    let out = hoist(&s.root, &["build", "--progress", "plain", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the sleeping stage was killed, not waited for"
    );
    let ps = run_ok(Command::new("ps").args(["-eo", "args"]));
    assert!(!ps.lines().any(|l| l.trim() == "sleep 60"), "no sandboxed process survives: {ps}");
    let work = s.root.join("snapshots/work");
    let left: Vec<_> = fs::read_dir(&work)
        .map(|d| {
            d.map(|e| e.unwrap().file_name()).filter(|n| !n.to_string_lossy().ends_with(".lock")).collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "no working root is left: {left:?}");
}

#[test]
fn flags_this_version_does_not_implement_are_refused_with_the_line() {
    let s = setup();
    for (instruction, flag) in [
        ("COPY --parents a.txt /d/", "--parents"),
        ("COPY --exclude=*.md . /d/", "--exclude"),
        ("ADD https://example.invalid/file /f", "URL"),
        ("RUN --mount=type=cache,target=/c true", "--mount"),
    ] {
        let dir = context(&s, "refused", &format!("FROM busybox\n{instruction}\n"), &[("a.txt", "a\n")]);
        let out = hoist(&s.root, &["build", "--progress", "plain", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{instruction}");
        let stderr = common::stderr(&out);
        assert!(stderr.contains("Dockerfile:2") && stderr.contains(flag), "{instruction}: {stderr}");
    }
}

#[test]
fn from_platform_other_than_this_machine_is_refused_and_its_own_is_built() {
    let s = setup();
    let other = if cfg!(target_arch = "x86_64") { "linux/arm64" } else { "linux/amd64" };
    let dir = context(&s, "platform", &format!("FROM --platform={other} busybox\nRUN true\n"), &[]);
    let out = hoist(&s.root, &["build", "--progress", "plain", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("does not emulate"), "{}", common::stderr(&out));
    let dir = context(&s, "platform-own", "FROM --platform=$BUILDPLATFORM busybox\nRUN true\n", &[]);
    let out = hoist(&s.root, &["build", "--progress", "plain", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
}
