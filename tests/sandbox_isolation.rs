mod common;

use common::sandbox::*;
use hoist::sandbox::{Network, default_capability_mask, run};

#[test]
fn user_process_is_pid_2_under_our_init() {
    let root = rootfs();
    assert_eq!(run_sh(root.path(), "echo $$"), "2\n");
}

#[test]
fn proc_shows_no_host_processes() {
    let root = rootfs();
    let (spec, cap) = spec(root.path(), argv(&["ls", "/proc"]));
    run(spec).unwrap();
    let mut pids: Vec<String> =
        cap.stdout().split_whitespace().filter(|e| e.parse::<u32>().is_ok()).map(str::to_string).collect();
    pids.sort();
    assert_eq!(pids, ["1", "2"]);
}

#[test]
fn hostname_is_its_own() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), sh("hostname; cat /etc/hostname"));
    spec.hostname = "buildbox".into();
    run(spec).unwrap();
    assert_eq!(cap.stdout(), "buildbox\nbuildbox\n");
}

#[test]
fn network_none_has_only_loopback_up() {
    let root = rootfs();
    let out =
        run_sh(root.path(), "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo");
    // IFF_UP is bit 0 of the flags.
    let flags = u32::from_str_radix(lines[2].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "{out}");
}

#[test]
fn network_host_sees_host_interfaces() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), argv(&["ls", "/sys/class/net"]));
    spec.network = Network::Host;
    run(spec).unwrap();
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let mut seen: Vec<String> = cap.stdout().split_whitespace().map(str::to_string).collect();
    seen.sort();
    assert_eq!(seen, host);
}

#[test]
fn host_network_resolv_conf_is_the_hosts() {
    let root = rootfs();
    let (mut spec, cap) = spec(root.path(), argv(&["cat", "/etc/resolv.conf"]));
    spec.network = Network::Host;
    run(spec).unwrap();
    assert_eq!(cap.stdout(), std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
}

#[test]
fn cannot_mount() {
    let root = rootfs();
    let (spec, _) = spec(root.path(), sh("mount -t tmpfs x /tmp"));
    assert!(!run(spec).unwrap().status.success());
}

#[test]
fn writes_land_in_the_root_dir_only() {
    let root = rootfs();
    let name = format!("hoist-escape-{}", std::process::id());
    run_sh(root.path(), &format!("echo hi > /{name}"));
    assert_eq!(std::fs::read_to_string(root.path().join(&name)).unwrap(), "hi\n");
    assert!(!std::path::Path::new("/").join(&name).exists());
}

#[test]
fn proc_sys_and_sys_are_read_only() {
    let root = rootfs();
    let (spec, cap) = spec(
        root.path(),
        sh("echo 1 > /proc/sys/kernel/panic || echo procfail; touch /sys/x 2>/dev/null || echo sysfail"),
    );
    run(spec).unwrap();
    assert_eq!(cap.stdout(), "procfail\nsysfail\n");
}

fn status_field(root: &std::path::Path, user: Option<&str>, field: &str) -> String {
    let (mut spec, cap) = spec(root, argv(&["cat", "/proc/self/status"]));
    spec.user = user.map(str::to_string);
    run(spec).unwrap();
    let out = cap.stdout();
    out.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap().trim().to_string()
}

#[test]
fn capabilities_are_dockers_default_set() {
    let root = rootfs();
    let mask = format!("{:016x}", default_capability_mask());
    assert_eq!(mask, "00000000a80425fb");
    assert_eq!(status_field(root.path(), None, "CapBnd"), mask);
    assert_eq!(status_field(root.path(), None, "CapEff"), mask);
    assert_eq!(status_field(root.path(), None, "CapPrm"), mask);
    assert_eq!(status_field(root.path(), None, "CapInh"), "0000000000000000");
    assert_eq!(status_field(root.path(), None, "CapAmb"), "0000000000000000");
}

#[test]
fn non_root_user_has_no_effective_capabilities() {
    let root = rootfs();
    assert_eq!(status_field(root.path(), Some("app"), "CapEff"), "0000000000000000");
    assert_eq!(status_field(root.path(), Some("app"), "CapBnd"), "00000000a80425fb");
}

#[test]
fn no_new_privs_is_set() {
    let root = rootfs();
    assert_eq!(status_field(root.path(), None, "NoNewPrivs"), "1");
}

#[test]
fn dev_has_exactly_the_minimal_nodes() {
    let root = rootfs();
    let out = run_sh(root.path(), "ls -A /dev");
    let mut got: Vec<&str> = out.split_whitespace().collect();
    got.sort();
    let mut want = vec![
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom",
        "zero",
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(run_sh(root.path(), "echo x > /dev/null; head -c 4 /dev/zero | wc -c"), "4\n");
}

#[test]
fn etc_files_are_provided_and_not_left_in_the_root() {
    let root = rootfs();
    let out =
        run_sh(root.path(), "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname");
    assert!(out.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), "{out}");
    assert!(out.contains("127.0.0.1\thoist\n---\n"), "{out}");
    assert!(out.ends_with("---\nhoist\n"), "{out}");
    for f in ["hosts", "resolv.conf", "hostname"] {
        assert!(!root.path().join("etc").join(f).exists(), "etc/{f} left in the root");
    }
    for d in ["proc", "dev", "sys"] {
        assert!(!root.path().join(d).exists(), "{d} left in the root");
    }
}

#[test]
fn created_mount_points_are_reported() {
    let root = rootfs();
    let (spec, _) = spec(root.path(), argv(&["true"]));
    let out = run(spec).unwrap();
    let mut got: Vec<String> = out.created_mount_points.iter().map(|p| p.display().to_string()).collect();
    got.sort();
    assert_eq!(got, ["dev", "etc/hostname", "etc/hosts", "etc/resolv.conf", "proc", "sys"]);
}

#[test]
fn existing_etc_files_are_shadowed_not_changed() {
    let root = rootfs();
    std::fs::write(root.path().join("etc/hosts"), "original\n").unwrap();
    let (mut spec, cap) = spec(root.path(), sh("cat /etc/hosts; echo changed >> /etc/hosts"));
    spec.hosts = Some("10.0.0.1 custom\n".into());
    let out = run(spec).unwrap();
    assert_eq!(cap.stdout(), "10.0.0.1 custom\n");
    assert_eq!(std::fs::read_to_string(root.path().join("etc/hosts")).unwrap(), "original\n");
    assert!(!out.created_mount_points.iter().any(|p| p.ends_with("hosts")));
}

#[test]
fn extra_bind_mounts_are_visible_and_readonly_when_asked() {
    let root = rootfs();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("f"), "data\n").unwrap();
    let (mut spec, cap) = spec(root.path(), sh("cat /data/f; touch /data/g || echo ro"));
    spec.mounts = vec![hoist::sandbox::BindMount {
        source: data.path().to_path_buf(),
        target: "/data".into(),
        readonly: true,
    }];
    run(spec).unwrap();
    assert_eq!(cap.stdout(), "data\nro\n");
    assert!(!root.path().join("data").exists());
}
