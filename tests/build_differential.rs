//! Every fixture under fixtures/build/ built by hoist and by `docker build`
//! (BuildKit in the real Docker Engine from Debian's docker.io) gives the
//! same final filesystem (path, type, mode, owner, size, content digest,
//! link target) and the same config. Fixtures using syntax Engine 20.10's
//! BuildKit lacks carry an `expected.json` written from the Dockerfile
//! reference and are checked against it instead.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::dockerd::Dockerd;
use common::{busybox_rootfs, hoist_ok, run_ok};
use sha2::Digest as _;

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

/// One line per path: what the comparison looks at.
fn describe_tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = fs::symlink_metadata(entry.path()).unwrap();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("symlink -> {}", fs::read_link(entry.path()).unwrap().display())
        } else if ft.is_file() {
            let digest = sha2::Sha256::digest(fs::read(entry.path()).unwrap());
            format!("file size={} sha256={}", m.len(), hex::encode(&digest[..8]))
        } else if ft.is_char_device() {
            format!("char {}", m.rdev())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        out.insert(rel, format!("{what} mode={:o} owner={}:{}", m.mode() & 0o7777, m.uid(), m.gid()));
    }
    out
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

fn hoist_config(root: &Path, name: &str) -> serde_json::Value {
    let text = hoist_ok(root, &["inspect", name]);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let value = if let serde_json::Value::Array(mut items) = value { items.remove(0) } else { value };
    value["Config"].clone()
}

/// The history rows a build added, as (created_by, empty_layer, comment).
fn history(store: &Path, tag: &str) -> Vec<String> {
    let store = hoist::store::Store::open(store).unwrap();
    let config = store.resolve(tag).unwrap().image.config;
    config
        .history
        .iter()
        .skip(1) // the base image's own row
        .map(|h| {
            format!(
                "{} | empty_layer={} | {}",
                h.created_by.as_deref().unwrap_or(""),
                h.empty_layer,
                h.comment.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// Engine 20.10's HealthConfig predates `StartInterval`, which current
/// BuildKit prints between StartPeriod and Retries: drop it from ours.
fn without_start_interval(row: &str) -> String {
    if !row.starts_with("HEALTHCHECK &{") {
        return row.to_string();
    }
    let Some(rune) = row.rfind(" '") else { return row.to_string() };
    let closing = row[..rune].rfind('"').unwrap();
    let opening = row[..closing].rfind('"').unwrap();
    format!("{}{}", &row[..opening - 1], &row[rune..])
}

/// The filesystem of a docker image: `docker save`, then hoist loads it
/// into a scratch store and writes its layers out.
fn docker_filesystem(docker: &Dockerd, tag: &str, work: &Path) -> PathBuf {
    let archive = work.join(format!("{tag}.docker.tar"));
    docker.docker_ok(&["save", "-o", archive.to_str().unwrap(), tag]);
    let store = work.join("docker-images");
    hoist_ok(&store, &["load", "-i", archive.to_str().unwrap()]);
    let dest = work.join(format!("{tag}.docker-fs"));
    let store = hoist::store::Store::open(&store).unwrap();
    let image = store.resolve(tag).unwrap().image;
    hoist::export::output::write_local(&store, &image, &dest).unwrap();
    dest
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
        let hoist_fs = work.path().join(format!("{name}.hoist-fs"));
        let mut args: Vec<String> = vec![
            "build".into(),
            "--progress".into(),
            "plain".into(),
            "-t".into(),
            tag.clone(),
            "-o".into(),
            format!("type=local,dest={}", hoist_fs.display()),
        ];
        args.extend(extra_args(&dir));
        args.push(dir.to_string_lossy().into_owned());
        let out = common::hoist(&root, &args.iter().map(String::as_str).collect::<Vec<_>>());
        if !out.status.success() {
            failures.push(format!("{name}: hoist build failed:\n{}", common::stderr(&out)));
            continue;
        }
        let hoist_tree = describe_tree(&hoist_fs);
        let hoist_cfg = config_fields(&hoist_config(&root, &tag));

        let expected = dir.join("expected.json");
        if expected.exists() {
            let expected: serde_json::Value =
                serde_json::from_str(&fs::read_to_string(&expected).unwrap()).unwrap();
            for (path, content) in expected["files"].as_object().unwrap() {
                let got = fs::read_to_string(hoist_fs.join(path.trim_start_matches('/'))).unwrap_or_default();
                if got != content.as_str().unwrap() {
                    failures.push(format!("{name}: {path} holds {got:?}, the reference gives {content}"));
                }
            }
            if let Some(env) = expected.get("env").and_then(|e| e.as_array()) {
                let have = hoist_cfg["Env"].as_array().cloned().unwrap_or_default();
                for var in env {
                    if !have.contains(var) {
                        failures.push(format!("{name}: Env lacks {var}: {have:?}"));
                    }
                }
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
        let docker_fs = docker_filesystem(&docker, &tag, work.path());
        let docker_tree = describe_tree(&docker_fs);
        let docker_cfg: serde_json::Value =
            serde_json::from_str(docker.docker_ok(&["inspect", "--format", "{{json .Config}}", &tag]).trim())
                .unwrap();
        let docker_cfg = config_fields(&docker_cfg);

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
        let ours: Vec<String> = history(&root, &tag).iter().map(|row| without_start_interval(row)).collect();
        let theirs = history(&work.path().join("docker-images"), &tag);
        if ours != theirs {
            differences.push(format!("  history:\n    docker {theirs:#?}\n    hoist  {ours:#?}"));
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
