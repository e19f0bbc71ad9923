//! Running a test body as an unprivileged user: as root (as CI runs), the
//! users are created (`hoisttest` with /etc/subuid and /etc/subgid ranges,
//! `hoisttest2` without) and the test binary re-runs the one test as the
//! user; unprivileged, the body runs directly. A kernel that forbids
//! unprivileged user namespaces fails the test with the reason.

use std::process::Command;
use std::sync::Once;

pub const CHILD_ENV: &str = "HOIST_SANDBOX_ROOTLESS_CHILD";
pub const WITH_SUBIDS: &str = "hoisttest";
pub const WITHOUT_SUBIDS: &str = "hoisttest2";

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

pub fn userns_refusal() -> Option<String> {
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

pub fn set_up_users() {
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
pub fn as_user(user: &str, name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() || hoist::idmap::rootless() {
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
