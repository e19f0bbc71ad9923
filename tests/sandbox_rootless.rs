//! Rootless sandboxes. Run as root (as CI does), each test sets up two
//! unprivileged users — `hoisttest` with /etc/subuid and /etc/subgid ranges,
//! `hoisttest2` without — and re-runs itself as one of them. Run unprivileged,
//! the bodies run directly. A kernel refusing unprivileged user namespaces
//! fails these tests with the reason; it never passes them silently.
mod common;

use common::rootless::{WITH_SUBIDS, WITHOUT_SUBIDS, as_user};
use common::sandbox::*;
use hoist::sandbox::{ExitStatus, RootFs, SandboxError, SandboxSpec, run};

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
        let probe_dir = tempfile::tempdir_in("/tmp").unwrap();
        assert!(hoist::snapshot::overlay_supported(probe_dir.path()));
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
        // deleting our dirs, and the probe left nothing in its own.
        dir.close().unwrap();
        assert!(
            std::fs::read_dir(probe_dir.path()).unwrap().next().is_none(),
            "the overlay probe left files"
        );
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

#[test]
fn rootless_host_network_run_sees_the_host_interfaces_and_a_read_only_sys() {
    as_user(WITH_SUBIDS, "rootless_host_network_run_sees_the_host_interfaces_and_a_read_only_sys", || {
        let root = rootfs();
        let cap = Captured::default();
        let mut spec = SandboxSpec::new(
            RootFs::Dir(root.path().to_path_buf()),
            sh("ls /sys/class/net; touch /sys/x 2>/dev/null && echo writable || echo read-only"),
        );
        spec.network = hoist::sandbox::Network::Host;
        spec.output = cap.output();
        let out = run(spec).unwrap();
        assert_eq!(out.status, ExitStatus::Exited(0), "{}", cap.stderr());
        let stdout = cap.stdout();
        assert!(stdout.lines().any(|l| l == "lo"), "{stdout}");
        assert!(stdout.ends_with("read-only\n"), "{stdout}");
    });
}
