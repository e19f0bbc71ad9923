//! Rootless sandboxes. Run as root (as CI does), each test sets up two
//! unprivileged users — `hoisttest` with /etc/subuid and /etc/subgid ranges,
//! `hoisttest2` without — and re-runs itself as one of them. Run unprivileged,
//! the bodies run directly. A kernel refusing unprivileged user namespaces
//! fails these tests with the reason; it never passes them silently.
mod common;

use std::process::Command;
use std::sync::Once;

use common::sandbox::*;
use hoist::sandbox::{ExitStatus, RootFs, SandboxError, SandboxSpec, run};

const CHILD_ENV: &str = "HOIST_SANDBOX_ROOTLESS_CHILD";
const WITH_SUBIDS: &str = "hoisttest";
const WITHOUT_SUBIDS: &str = "hoisttest2";

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn userns_refusal() -> Option<String> {
    if read_sysctl("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user.max_user_namespaces is 0".into());
    }
    if read_sysctl("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("kernel.unprivileged_userns_clone is 0".into());
    }
    if read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some("kernel.apparmor_restrict_unprivileged_userns is 1".into());
    }
    None
}

fn sh_ok(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

fn set_up_users() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for user in [WITH_SUBIDS, WITHOUT_SUBIDS] {
            sh_ok(&format!("id {user} >/dev/null 2>&1 || useradd -m {user}"));
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let uid2 =
                String::from_utf8(Command::new("id").args(["-u", WITHOUT_SUBIDS]).output().unwrap().stdout)
                    .unwrap()
                    .trim()
                    .to_string();
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| {
                    let who = l.split(':').next().unwrap_or("");
                    who != WITHOUT_SUBIDS && who != uid2
                })
                .map(str::to_string)
                .collect();
            if !lines.iter().any(|l| l.starts_with(&format!("{WITH_SUBIDS}:"))) {
                lines.push(format!("{WITH_SUBIDS}:400000:65536"));
            }
            std::fs::write(file, lines.join("\n") + "\n").unwrap();
        }
    });
}

/// Runs `name` as `user` (re-executing this test binary), or runs `body` when
/// already unprivileged.
fn as_user(user: &str, name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() || unsafe { libc::geteuid() } != 0 {
        body();
        return;
    }
    if let Some(why) = userns_refusal() {
        panic!("rootless sandbox tests cannot run: the kernel forbids unprivileged user namespaces ({why})");
    }
    set_up_users();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([&format!("--reuid={user}"), &format!("--regid={user}"), "--init-groups", "--"])
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("HOME", format!("/home/{user}"))
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "as {user}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rootless_process_sees_uid_0() {
    as_user(WITH_SUBIDS, "rootless_process_sees_uid_0", || {
        assert!(hoist::sandbox::rootless());
        let root = rootfs();
        assert_eq!(run_sh(root.path(), "id -u; id -g"), "0\n0\n");
    });
}

#[test]
fn rootless_overlay_root_accepts_writes() {
    as_user(WITH_SUBIDS, "rootless_overlay_root_accepts_writes", || {
        assert!(hoist::sandbox::overlay_supported());
        let base = rootfs();
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        let cap = Captured::default();
        let root = RootFs::Overlay {
            lower: vec![base.path().to_path_buf()],
            upper: upper.clone(),
            work: work.clone(),
        };
        let mut spec = SandboxSpec::new(root, sh("echo hello > /root/f && cat /root/f && rm /etc/group"));
        spec.output = cap.output();
        let out = run(spec).unwrap();
        assert_eq!(out.status, ExitStatus::Exited(0), "{}", cap.stderr());
        assert_eq!(cap.stdout(), "hello\n");
        assert_eq!(std::fs::read_to_string(upper.join("root/f")).unwrap(), "hello\n");
        assert!(base.path().join("etc/group").exists());
        assert!(!upper.join("etc/hosts").exists());
        // Nothing the overlay left (work/work is mode 000) keeps us from
        // deleting our dirs, the probe's included.
        dir.close().unwrap();
        let probe = format!("hoist-overlay-probe-{}-", std::process::id());
        let left = std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&probe));
        assert!(!left, "overlay probe dir left in /tmp");
    });
}

#[test]
fn rootless_non_root_user_works_with_subordinate_ids() {
    as_user(WITH_SUBIDS, "rootless_non_root_user_works_with_subordinate_ids", || {
        let root = rootfs();
        let (mut spec, cap) = spec(root.path(), sh("id; touch /tmp/mine && stat -c %u /tmp/mine"));
        spec.user = Some("app".into());
        let out = run(spec).unwrap();
        assert!(out.status.success(), "{}", cap.stderr());
        assert_eq!(cap.stdout(), "uid=1000(app) gid=1000(app) groups=1000(app),1001(extra)\n1000\n");
    });
}

#[test]
fn rootless_without_subordinate_ids_only_root_works() {
    as_user(WITHOUT_SUBIDS, "rootless_without_subordinate_ids_only_root_works", || {
        let root = rootfs();
        assert_eq!(run_sh(root.path(), "id -u"), "0\n");
        let (mut spec, _) = spec(root.path(), argv(&["id"]));
        spec.user = Some("app".into());
        let err = run(spec).unwrap_err();
        assert!(matches!(err, SandboxError::UserNotMapped { uid: 1000, .. }), "{err:?}");
        assert!(err.to_string().contains("/etc/subuid"), "{err}");
    });
}
