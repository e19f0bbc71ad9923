//! Every fixture under fixtures/build/ built by hoist and by `docker build`
//! (BuildKit in the real Docker Engine from Debian's docker.io) gives the
//! same final filesystem (path, type, mode, owner, size, content digest,
//! link target), the same config and the same history. Both images are
//! read from the archives `docker save` and `hoist save` write, by the
//! tests' own reader (`common::image_archive`), never by hoist's loading or
//! output code. Fixtures using syntax Engine 20.10's BuildKit lacks carry an
//! `expected.json` written from the Dockerfile reference and are checked
//! against it instead.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::dockerd::Dockerd;
use common::image_archive::{self, ArchivedImage};
use common::{busybox_rootfs, hoist_ok, run_ok};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/build");
    let mut out: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

/// A fixture copied to a scratch dir, its generated files made.
fn prepared(fixture: &Path, work: &Path) -> PathBuf {
    let dest = work.join(fixture.file_name().unwrap());
    run_ok(Command::new("cp").arg("-a").arg(fixture).arg(&dest));
    let prepare = dest.join("prepare.sh");
    if prepare.exists() {
        run_ok(&mut Command::new(&prepare));
        fs::remove_file(&prepare).unwrap();
    }
    dest
}

fn extra_args(dir: &Path) -> Vec<String> {
    let mut args = Vec::new();
    if let Ok(text) = fs::read_to_string(dir.join("build-args")) {
        for line in text.lines().filter(|l| !l.is_empty()) {
            args.push("--build-arg".to_string());
            args.push(line.to_string());
        }
    }
    if let Ok(target) = fs::read_to_string(dir.join("target")) {
        args.push("--target".to_string());
        args.push(target.trim().to_string());
    }
    args
}

const CONFIG_FIELDS: [&str; 11] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
];

/// The compared config fields, empty values normalised to null.
fn config_fields(config: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    CONFIG_FIELDS
        .iter()
        .map(|field| {
            let value = config.get(*field).cloned().unwrap_or(serde_json::Value::Null);
            let empty = match &value {
                serde_json::Value::String(s) => s.is_empty(),
                serde_json::Value::Array(a) => a.is_empty(),
                serde_json::Value::Object(o) => o.is_empty(),
                serde_json::Value::Null => true,
                _ => false,
            };
            (field.to_string(), if empty { serde_json::Value::Null } else { value })
        })
        .collect()
}

/// The history rows a build added, as (created_by, empty_layer, comment).
fn history(config: &serde_json::Value) -> Vec<String> {
    config["history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .skip(1) // the base image's own row
        .map(|h| {
            format!(
                "{} | empty_layer={} | {}",
                h["created_by"].as_str().unwrap_or(""),
                h["empty_layer"].as_bool().unwrap_or(false),
                h["comment"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// One line per path of the image's final filesystem.
fn describe(image: &ArchivedImage) -> BTreeMap<String, String> {
    image.tree.iter().map(|(path, node)| (path.clone(), node.line())).collect()
}

/// Engine 20.10's BuildKit (v0.8) wrote some history rows in formats that
/// current BuildKit has since changed, and hoist writes the current ones
/// (its plan tests pin them). Both sides are reduced to what the two
/// formats share:
/// - ARG: v0.8 writes `NAME[=default]`, current `NAME=value` as resolved;
/// - COPY/ADD: v0.8 leaves out `--chown`, `--chmod`, `--link`, …;
/// - HEALTHCHECK: v0.8 prints Go's `&{…}` of its own struct, current the
///   whole config (the config itself is compared field by field);
/// - EXPOSE: v0.8 prints a Go map, current a sorted list.
fn version_neutral(row: &str) -> String {
    let (created_by, rest) = row.split_once(" | ").unwrap_or((row, ""));
    let neutral = if let Some(words) = created_by.strip_prefix("ARG ") {
        let names: Vec<&str> = words.split(' ').map(|w| w.split('=').next().unwrap_or(w)).collect();
        format!("ARG {}", names.join(" "))
    } else if created_by.starts_with("COPY ") || created_by.starts_with("ADD ") {
        let mut words = created_by.split(' ');
        let head = words.next().unwrap_or_default();
        let kept: Vec<&str> = words.skip_while(|w| w.starts_with("--")).collect();
        format!("{head} {}", kept.join(" "))
    } else if created_by.starts_with("HEALTHCHECK ") {
        "HEALTHCHECK …".to_string()
    } else if let Some(spec) = created_by.strip_prefix("EXPOSE ") {
        let mut ports: Vec<&str> = spec
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '/' || c == '-'))
            .filter(|w| w.contains('/'))
            .collect();
        ports.sort_unstable();
        format!("EXPOSE {}", ports.join(" "))
    } else {
        created_by.to_string()
    };
    format!("{neutral} | {rest}")
}

/// What a fixture's `expected.json` says the image holds, where Engine
/// 20.10's BuildKit cannot be the reference (a feature it lacks, or a rule
/// current BuildKit changed; `why` says which):
/// - `files`: path → content;
/// - `tree`: path → the line `describe` gives (type, size, digest, mode,
///   owner, hard link);
/// - `absent`: paths the image must not hold;
/// - `env`: variables the config's Env must contain;
/// - `config`: config fields (as `CONFIG_FIELDS` names them) and their exact
///   values (`null` for unset or empty);
/// - `history`: the rows the build added, as `history` prints them.
fn against_reference(
    expected: &serde_json::Value,
    ours: &ArchivedImage,
    config: &BTreeMap<String, serde_json::Value>,
    rows: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    assert!(expected["why"].is_string(), "expected.json says why docker build is not the reference");
    for key in expected.as_object().unwrap().keys() {
        assert!(
            ["why", "files", "tree", "absent", "env", "config", "history"].contains(&key.as_str()),
            "expected.json: unknown key {key}"
        );
    }
    let node = |path: &str| ours.tree.get(path.trim_start_matches('/'));
    for (path, content) in expected["files"].as_object().into_iter().flatten() {
        let got = node(path)
            .and_then(|n| n.content.clone())
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        if got != content.as_str().unwrap() {
            problems.push(format!("{path} holds {got:?}, the reference gives {content}"));
        }
    }
    for (path, line) in expected["tree"].as_object().into_iter().flatten() {
        let got = node(path).map(|n| n.line()).unwrap_or_else(|| "absent".into());
        if got != line.as_str().unwrap() {
            problems.push(format!("{path} is {got:?}, the reference gives {line}"));
        }
    }
    for path in expected["absent"].as_array().into_iter().flatten() {
        if let Some(found) = node(path.as_str().unwrap()) {
            problems.push(format!("{path} should be absent, found {}", found.line()));
        }
    }
    if let Some(env) = expected.get("env").and_then(|e| e.as_array()) {
        let have = config["Env"].as_array().cloned().unwrap_or_default();
        for var in env {
            if !have.contains(var) {
                problems.push(format!("Env lacks {var}: {have:?}"));
            }
        }
    }
    for (field, value) in expected["config"].as_object().into_iter().flatten() {
        let got = config.get(field).unwrap_or_else(|| panic!("expected.json: {field} is not compared"));
        if got != value {
            problems.push(format!("config {field}: {got}, the reference gives {value}"));
        }
    }
    if let Some(history) = expected.get("history").and_then(|h| h.as_array()) {
        let want: Vec<&str> = history.iter().map(|r| r.as_str().unwrap()).collect();
        if want != rows {
            problems.push(format!("history:\n    reference {want:#?}\n    hoist     {rows:#?}"));
        }
    }
    problems
}

#[test]
fn fixtures_build_the_same_filesystem_and_config_as_docker_build() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    hoist_ok(&root, &["import", "--change", "CMD [\"sh\"]", rootfs.to_str().unwrap(), "busybox:latest"]);
    let base = work.path().join("busybox.tar");
    hoist_ok(&root, &["save", "-o", base.to_str().unwrap(), "busybox:latest"]);
    let docker = Dockerd::start();
    docker.docker_ok(&["load", "-i", base.to_str().unwrap()]);

    let mut failures = Vec::new();
    let fixtures = fixtures();
    assert!(fixtures.len() >= 20, "at least 20 build fixtures");
    for fixture in &fixtures {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let dir = prepared(fixture, work.path());
        let tag = format!("fixture-{name}:test");
        let hoist_archive = work.path().join(format!("{name}.hoist.tar"));
        let mut args: Vec<String> = vec![
            "build".into(),
            "--progress".into(),
            "plain".into(),
            "-t".into(),
            tag.clone(),
            "-o".into(),
            format!("type=docker,dest={}", hoist_archive.display()),
        ];
        args.extend(extra_args(&dir));
        args.push(dir.to_string_lossy().into_owned());
        let out = common::hoist(&root, &args.iter().map(String::as_str).collect::<Vec<_>>());
        if !out.status.success() {
            failures.push(format!("{name}: hoist build failed:\n{}", common::stderr(&out)));
            continue;
        }
        let ours = image_archive::read(&hoist_archive, Some(&tag));
        let hoist_tree = describe(&ours);
        let hoist_cfg = config_fields(&ours.config["config"]);

        let expected = dir.join("expected.json");
        if expected.exists() {
            let expected: serde_json::Value =
                serde_json::from_str(&fs::read_to_string(&expected).unwrap()).unwrap();
            let ours_rows = history(&ours.config);
            for problem in against_reference(&expected, &ours, &hoist_cfg, &ours_rows) {
                failures.push(format!("{name}: {problem}"));
            }
            continue;
        }

        let mut build = Command::new("/usr/bin/docker");
        build
            .arg("-H")
            .arg(format!("unix://{}", docker.socket().display()))
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "--network", "host", "--progress", "plain", "-t", &tag])
            .args(extra_args(&dir))
            .arg(&dir)
            .stdin(Stdio::null());
        let out = build.output().unwrap();
        if !out.status.success() {
            failures.push(format!("{name}: docker build failed:\n{}", String::from_utf8_lossy(&out.stderr)));
            continue;
        }
        let docker_archive = work.path().join(format!("{name}.docker.tar"));
        docker.docker_ok(&["save", "-o", docker_archive.to_str().unwrap(), &tag]);
        let theirs = image_archive::read(&docker_archive, Some(&tag));
        let docker_tree = describe(&theirs);
        let docker_cfg = config_fields(&theirs.config["config"]);

        let mut differences = Vec::new();
        for (path, line) in &docker_tree {
            match hoist_tree.get(path) {
                Some(ours) if ours == line => {}
                Some(ours) => differences.push(format!("  {path}: docker {line} | hoist {ours}")),
                None => differences.push(format!("  {path}: only in docker ({line})")),
            }
        }
        for (path, line) in &hoist_tree {
            if !docker_tree.contains_key(path) {
                differences.push(format!("  {path}: only in hoist ({line})"));
            }
        }
        for field in CONFIG_FIELDS {
            if docker_cfg[field] != hoist_cfg[field] {
                differences.push(format!(
                    "  config {field}: docker {} | hoist {}",
                    docker_cfg[field], hoist_cfg[field]
                ));
            }
        }
        let our_rows: Vec<String> = history(&ours.config).iter().map(|row| version_neutral(row)).collect();
        let their_rows: Vec<String> =
            history(&theirs.config).iter().map(|row| version_neutral(row)).collect();
        if our_rows != their_rows {
            differences.push(format!("  history:\n    docker {their_rows:#?}\n    hoist  {our_rows:#?}"));
        }
        if !differences.is_empty() {
            failures.push(format!("{name}: differs from docker build:\n{}", differences.join("\n")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_archive_reader_applies_whiteouts_and_opaque_directories() {
    fn layer(entries: &[(&str, tar::EntryType)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, path, std::io::empty()).unwrap();
        }
        builder.into_inner().unwrap()
    }
    use tar::EntryType::{Directory, Regular};
    let mut tree = BTreeMap::new();
    image_archive::apply(&mut tree, &layer(&[("a/", Directory), ("a/x", Regular), ("b", Regular)]));
    image_archive::apply(
        &mut tree,
        &layer(&[("a/", Directory), ("a/.wh..wh..opq", Regular), ("a/y", Regular), (".wh.b", Regular)]),
    );
    assert_eq!(tree.keys().cloned().collect::<Vec<_>>(), vec!["a", "a/y"]);
}
