//! The engine room end to end: a real process, run by the sandbox on a
//! working root the snapshot module prepared from a busybox-static image in
//! the store, changes the filesystem, and the diff is the layer Docker would
//! record — checked entry by entry, for both snapshotters, as root and
//! rootless. Afterwards no mount, process or temporary directory is left.

mod common;
mod snapshot_support;

use std::fs::File;
use std::path::PathBuf;

use common::rootless::{WITH_SUBIDS, as_user};
use common::sandbox::{child_processes, host_mounts};
use hoist::export::import::{ImportOptions, import};
use hoist::idmap::IdMap;
use hoist::image::reference::Reference;
use hoist::layer::Compression;
use hoist::sandbox::{self, ExitStatus, Output, RootFs, SandboxSpec};
use hoist::snapshot::{LayerBlob, Snapshots, Snapshotter};
use hoist::store::Store;
use snapshot_support::{Member, member, members, paths};

/// The tests check that no child process is left: one at a time, so that
/// one test's processes are not mistaken for another's leftovers.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every kind of change a RUN makes.
const SCRIPT: &str = "set -e
echo new > /created.txt
rm /bin/vi
rm -rf /root && mkdir /root && echo x > /root/new
chmod 0600 /etc/passwd
echo h > /hl-a && ln /hl-a /hl-b
ln -s /created.txt /link
echo u > /owned && chown 1000:1001 /owned
mkdir -p /locked/in && echo s > /locked/in/f && chown -R 1000:1001 /locked && chmod 700 /locked/in
";

struct Scenario {
    _work: tempfile::TempDir,
    store: Store,
    layers: Vec<LayerBlob>,
}

fn scenario() -> Scenario {
    let work = tempfile::Builder::new().prefix("hoist-layers-").tempdir_in("/tmp").unwrap();
    let rootfs = common::busybox_rootfs(work.path());
    let store = Store::open(work.path().join("store")).unwrap();
    let options = ImportOptions { source_name: "busybox".into(), ..ImportOptions::default() };
    let name = Reference::parse("busybox:latest").unwrap();
    let image = import(&store, File::open(rootfs).unwrap(), Some(&name), &options).unwrap();
    let layers = LayerBlob::of_image(&image).unwrap();
    Scenario { _work: work, store, layers }
}

/// Runs `script` in a sandbox on the image and returns the layer's members.
fn run_and_diff(s: &Scenario, snapshotter: Snapshotter, script: &str) -> Vec<Member> {
    let mut snapshots = Snapshots::with_snapshotter(&s.store, snapshotter).unwrap();
    if sandbox::rootless() {
        snapshots = snapshots.with_id_map(IdMap::rootless());
    }
    let working = snapshots.prepare(&s.layers).unwrap();
    let root = RootFs::from(working.rootfs());
    let mut spec = SandboxSpec::new(root, vec!["/bin/sh".into(), "-c".into(), script.into()]);
    spec.output = Output::Null;
    let outcome = sandbox::run(spec).unwrap();
    assert_eq!(outcome.status, ExitStatus::Exited(0), "{snapshotter:?}");
    let mut layer = Vec::new();
    working.diff(&mut layer, Compression::None, &outcome.created_mount_points).unwrap();
    working.release().unwrap();
    members(&layer)
}

fn check_layer(members: &[Member], base_passwd: &[u8]) {
    let listed = paths(members);
    let expected = [
        "bin/",
        "bin/.wh.vi",
        "created.txt",
        "etc/",
        "etc/passwd",
        "hl-a",
        "hl-b",
        "link",
        "locked/",
        "locked/in/",
        "locked/in/f",
        "owned",
        "root/",
        "root/.wh..wh..opq",
        "root/new",
    ];
    assert_eq!(listed, expected, "the layer holds exactly the changes");
    let created = member(members, "created.txt");
    assert_eq!((created.kind, created.mode, created.uid, created.gid), ('0', 0o644, 0, 0));
    assert_eq!(created.contents, b"new\n");
    let passwd = member(members, "etc/passwd");
    assert_eq!(passwd.mode, 0o600, "chmod is recorded");
    assert_eq!(passwd.contents, base_passwd, "a metadata-only change keeps the content");
    assert_eq!(member(members, "bin/.wh.vi").kind, '0');
    assert_eq!(member(members, "root/new").contents, b"x\n");
    let hardlink = member(members, "hl-b");
    assert_eq!((hardlink.kind, hardlink.link.as_deref()), ('1', Some("hl-a")), "hardlinks stay hardlinks");
    let link = member(members, "link");
    assert_eq!((link.kind, link.link.as_deref()), ('2', Some("/created.txt")));
    let owned = member(members, "owned");
    assert_eq!((owned.uid, owned.gid), (1000, 1001), "a non-root owner is recorded as the process saw it");
    // Rootless, only the user namespace's root can read (and then remove)
    // a directory a subordinate id owns with mode 700.
    let locked = member(members, "locked/in/");
    assert_eq!((locked.mode, locked.uid, locked.gid), (0o700, 1000, 1001));
    let inside = member(members, "locked/in/f");
    assert_eq!((inside.uid, inside.gid, inside.contents.as_slice()), (1000, 1001, &b"s\n"[..]));
}

type Comparable = (String, char, u32, u64, u64, Option<String>, Vec<u8>, Vec<(String, Vec<u8>)>);

fn comparable(members: &[Member]) -> Vec<Comparable> {
    members
        .iter()
        .map(|m| {
            let xattrs = m.xattrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            (m.path.clone(), m.kind, m.mode, m.uid, m.gid, m.link.clone(), m.contents.clone(), xattrs)
        })
        .collect()
}

fn base_passwd() -> Vec<u8> {
    b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".to_vec()
}

/// What must be gone after a run: working dirs and temp files in the store.
fn leftovers(store: &Store) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["tmp", "snapshots/work"] {
        let dir = store.root().join(dir);
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            // A working root's lock file lives beside it while it exists.
            if path.extension().is_none_or(|e| e != "lock") {
                out.push(path);
            }
        }
    }
    out
}

fn both_snapshotters_record_every_change() {
    let s = scenario();
    let mounts_before = host_mounts();
    let overlay = run_and_diff(&s, Snapshotter::Overlay, SCRIPT);
    check_layer(&overlay, &base_passwd());
    let copy = run_and_diff(&s, Snapshotter::Copy, SCRIPT);
    check_layer(&copy, &base_passwd());
    // The two runs happen at different times, and /etc's mtime moves when
    // the sandbox adds and removes its /etc/hosts mount point: compare
    // everything but mtimes (the snapshot tests compare whole diff IDs for
    // one change applied to both).
    assert_eq!(comparable(&overlay), comparable(&copy), "both snapshotters write the same entries");
    assert_eq!(host_mounts(), mounts_before, "no mount is left behind");
    assert_eq!(leftovers(&s.store), Vec::<PathBuf>::new(), "no working dir or temp file is left behind");
    assert_eq!(child_processes(), Vec::<u32>::new(), "no process is left behind");
}

#[test]
fn processes_changes_become_the_expected_layer_with_both_snapshotters() {
    let _serial = serial();
    both_snapshotters_record_every_change();
}

#[test]
fn rootless_processes_changes_become_the_same_layer() {
    let _serial = serial();
    as_user(
        WITH_SUBIDS,
        "rootless_processes_changes_become_the_same_layer",
        both_snapshotters_record_every_change,
    );
}

#[test]
fn failed_and_timed_out_runs_leave_nothing_behind() {
    let _serial = serial();
    let s = scenario();
    let mounts_before = host_mounts();
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let snapshots = Snapshots::with_snapshotter(&s.store, snapshotter).unwrap();
        for (script, timeout) in [("echo partial > /f; exit 7", None), ("sleep 100 & sleep 100", Some(0.3))] {
            let working = snapshots.prepare(&s.layers).unwrap();
            let root = RootFs::from(working.rootfs());
            let mut spec = SandboxSpec::new(root, vec!["/bin/sh".into(), "-c".into(), script.into()]);
            spec.output = Output::Null;
            spec.timeout = timeout.map(std::time::Duration::from_secs_f64);
            let outcome = sandbox::run(spec).unwrap();
            assert_ne!(outcome.status, ExitStatus::Exited(0));
            working.release().unwrap();
        }
    }
    assert_eq!(host_mounts(), mounts_before);
    assert_eq!(leftovers(&s.store), Vec::<PathBuf>::new());
    assert_eq!(child_processes(), Vec::<u32>::new());
}
