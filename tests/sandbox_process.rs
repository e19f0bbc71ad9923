mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::sandbox::*;
use hoist::sandbox::{ExitStatus, Rlimit, RlimitResource, SandboxError, Stdin, run};

#[test]
fn exit_code_is_returned() {
    let root = rootfs();
    let (spec, _) = spec(root.path(), sh("exit 42"));
    assert_eq!(run(spec).unwrap().status, ExitStatus::Exited(42));
}

#[test]
fn signal_is_reported() {
    let root = rootfs();
    let (spec, _) = spec(root.path(), sh("kill -TERM $$"));
    assert_eq!(run(spec).unwrap().status, ExitStatus::Signaled(libc::SIGTERM));
}

#[test]
fn stdout_and_stderr_are_captured_separately_in_order() {
    let root = rootfs();
    let (spec, cap) = spec(root.path(), sh("echo a; echo b >&2; echo c; echo d >&2"));
    assert!(run(spec).unwrap().status.success());
    assert_eq!(cap.stdout(), "a\nc\n");
    assert_eq!(cap.stderr(), "b\nd\n");
}

#[test]
fn env_is_passed_and_path_defaults() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), sh("echo $FOO; echo $PATH"));
    spec.env = vec!["FOO=bar baz".into()];
    assert!(run(spec).unwrap().status.success());
    assert_eq!(cap.stdout(), "bar baz\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
}

#[test]
fn cwd_is_created_when_missing_and_owned_by_the_user() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), sh("pwd"));
    spec.cwd = "/work/dir".into();
    spec.user = Some("app".into());
    assert!(run(spec).unwrap().status.success());
    assert_eq!(cap.stdout(), "/work/dir\n");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root.path().join("work/dir")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
}

fn id_as(user: &str) -> String {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), argv(&["id"]));
    spec.user = Some(user.into());
    let out = run(spec).unwrap();
    assert!(out.status.success(), "{}", cap.stderr());
    cap.stdout()
}

#[test]
fn user_by_name_gets_supplementary_groups() {
    assert_eq!(id_as("app"), "uid=1000(app) gid=1000(app) groups=1000(app),1001(extra)\n");
}

#[test]
fn user_by_uid_uses_passwd_group() {
    assert_eq!(id_as("1000"), "uid=1000(app) gid=1000(app) groups=1000(app),1001(extra)\n");
}

#[test]
fn user_uid_not_in_passwd_gets_gid_0() {
    assert_eq!(id_as("4242"), "uid=4242 gid=0(root) groups=0(root)\n");
}

#[test]
fn user_uid_colon_gid() {
    assert_eq!(id_as("1000:1001"), "uid=1000(app) gid=1001(extra) groups=1001(extra)\n");
}

#[test]
fn user_name_colon_group() {
    assert_eq!(id_as("app:root"), "uid=1000(app) gid=0(root) groups=0(root)\n");
}

#[test]
fn unknown_user_is_a_typed_error() {
    let root = rootfs();
    let (mut spec, _) = spec(root.path(), argv(&["id"]));
    spec.user = Some("ghost".into());
    let err = run(spec).unwrap_err();
    assert!(matches!(err, SandboxError::UnknownUser(ref u) if u == "ghost"), "{err}");
}

#[test]
fn home_defaults_from_passwd() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), sh("echo $HOME"));
    spec.user = Some("app".into());
    run(spec).unwrap();
    assert_eq!(cap.stdout(), "/home/app\n");
    assert_eq!(run_sh(root.path(), "echo $HOME"), "/root\n");
}

#[test]
fn home_from_env_wins() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), sh("echo $HOME"));
    spec.env = vec!["HOME=/elsewhere".into()];
    run(spec).unwrap();
    assert_eq!(cap.stdout(), "/elsewhere\n");
}

#[test]
fn stdin_bytes_are_read() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), argv(&["wc", "-c"]));
    spec.stdin = Stdin::Bytes(vec![b'x'; 200_000]);
    assert!(run(spec).unwrap().status.success());
    assert_eq!(cap.stdout().trim(), "200000");
}

#[test]
fn stdin_is_null_by_default() {
    let root = rootfs();
    let (spec, cap) = spec(root.path(), argv(&["wc", "-c"]));
    run(spec).unwrap();
    assert_eq!(cap.stdout().trim(), "0");
}

#[test]
fn rlimits_are_applied() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), sh("ulimit -n; ulimit -Hn"));
    spec.rlimits = vec![Rlimit { resource: RlimitResource::Nofile, soft: 123, hard: 456 }];
    run(spec).unwrap();
    assert_eq!(cap.stdout(), "123\n456\n");
}

#[test]
fn timeout_kills_the_tree_and_returns_fast() {
    let root = rootfs();
    let (mut spec, _) = spec(root.path(), sh("sleep 100 & sleep 100"));
    spec.timeout = Some(Duration::from_millis(300));
    let start = Instant::now();
    let out = run(spec).unwrap();
    assert!(out.timed_out);
    assert!(!out.cancelled);
    assert_eq!(out.status, ExitStatus::Signaled(libc::SIGKILL));
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
}

#[test]
fn cancel_from_another_thread_kills_the_tree() {
    let root = rootfs();
    let (mut spec, _) = spec(root.path(), sh("sleep 100 & sleep 100"));
    let cancel = Arc::new(AtomicBool::new(false));
    spec.cancel = Some(cancel.clone());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.store(true, Ordering::SeqCst);
    });
    let start = Instant::now();
    let out = run(spec).unwrap();
    t.join().unwrap();
    assert!(out.cancelled);
    assert!(!out.timed_out);
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn exec_of_missing_binary_is_a_typed_error() {
    let root = rootfs();
    let (spec, _) = spec(root.path(), argv(&["foo"]));
    let err = run(spec).unwrap_err();
    assert!(matches!(err, SandboxError::Exec { ref program, .. } if program == "foo"), "{err:?}");
    assert_eq!(err.to_string(), "exec \"foo\": no such file or directory in the image");
}

#[test]
fn orphans_are_killed_when_the_main_process_exits() {
    let root = rootfs();
    let start = Instant::now();
    // The background sleep keeps stdout open; the run must still end.
    let out = run_sh(root.path(), "sleep 100 & echo done");
    assert_eq!(out, "done\n");
    assert!(start.elapsed() < Duration::from_secs(5));
}
