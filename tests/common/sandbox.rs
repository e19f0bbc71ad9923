//! A busybox root filesystem and small helpers shared by the sandbox tests.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hoist::sandbox::{Output, RootFs, SandboxSpec, Stream};

pub const BUSYBOX: &str = "/bin/busybox";

/// Fills `dir` with busybox, an applet symlink for each applet, and
/// passwd/group files: root, `app` (1000:1000, also in `extra` 1001), `nobody`.
pub fn populate_rootfs(dir: &Path) {
    for d in ["bin", "etc", "tmp", "root", "home/app"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1000:\nextra:x:1001:app\nnogroup:x:65534:\n")
        .unwrap();
    let _ = std::os::unix::fs::chown(dir.join("home/app"), Some(1000), Some(1000));
}

/// A busybox root in a fresh temp dir under /tmp, readable by everyone.
pub fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("hoist-sandbox-test-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    populate_rootfs(dir.path());
    dir
}

pub fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

pub fn sh(script: &str) -> Vec<String> {
    argv(&["/bin/sh", "-c", script])
}

/// Collected output of a run.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<(Vec<u8>, Vec<u8>)>>);

impl Captured {
    pub fn output(&self) -> Output {
        let c = self.0.clone();
        Output::Capture(Box::new(move |stream, bytes| {
            let mut g = c.lock().unwrap();
            match stream {
                Stream::Stdout => g.0.extend_from_slice(bytes),
                Stream::Stderr => g.1.extend_from_slice(bytes),
            }
        }))
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().0).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().1).into_owned()
    }
}

/// A spec over a Dir root with captured output.
pub fn spec(root: &Path, argv: Vec<String>) -> (SandboxSpec, Captured) {
    let cap = Captured::default();
    let mut spec = SandboxSpec::new(RootFs::Dir(root.to_path_buf()), argv);
    spec.output = cap.output();
    (spec, cap)
}

/// Runs `script` with `sh -c` and returns its stdout, asserting success.
pub fn run_sh(root: &Path, script: &str) -> String {
    let (spec, cap) = spec(root, sh(script));
    let out = hoist::sandbox::run(spec).unwrap();
    assert!(out.status.success(), "{script}: {:?}, stderr: {}", out.status, cap.stderr());
    cap.stdout()
}

/// The host's mount table, without the per-mount ids (to compare snapshots).
pub fn host_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').skip(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Live children of this process (zombies excluded).
pub fn child_processes() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields[1] == me && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}
