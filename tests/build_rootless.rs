//! `hoist build` as an unprivileged user: the README's first command, run
//! by a user the test creates, with the store in a directory it owns. A
//! kernel that forbids unprivileged user namespaces fails the test with the
//! reason.

mod common;

use std::path::Path;
use std::process::Command;

use common::rootless::{WITH_SUBIDS, as_user};
use common::{busybox_rootfs, hoist_ok};

#[test]
fn rootless_build_of_the_sample_image_runs_its_steps_and_is_cached_the_second_time() {
    as_user(
        WITH_SUBIDS,
        "rootless_build_of_the_sample_image_runs_its_steps_and_is_cached_the_second_time",
        || {
            let work = tempfile::Builder::new().prefix("hoist-rootless-build-").tempdir_in("/tmp").unwrap();
            let root = work.path().join("store");
            let rootfs = busybox_rootfs(work.path());
            hoist_ok(
                &root,
                &["import", "--change", "CMD [\"sh\"]", rootfs.to_str().unwrap(), "busybox:latest"],
            );
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hello");
            let dest = work.path().join("fs");
            let first = common::hoist(
                &root,
                &[
                    "build",
                    "--progress",
                    "plain",
                    "-t",
                    "hello:1",
                    "-o",
                    dest.to_str().unwrap(),
                    fixture.to_str().unwrap(),
                ],
            );
            assert!(first.status.success(), "{}", common::stderr(&first));
            assert_eq!(std::fs::read_to_string(dest.join("greeting.txt")).unwrap(), "hello from hoist\n");
            let again = common::hoist(
                &root,
                &["build", "--progress", "plain", "-t", "hello:1", fixture.to_str().unwrap()],
            );
            let stderr = common::stderr(&again);
            assert!(again.status.success() && stderr.contains("(0 steps run"), "{stderr}");
            let archive = work.path().join("hello.tar");
            hoist_ok(&root, &["save", "-o", archive.to_str().unwrap(), "hello:1"]);
        },
    );
}

/// The owners RUN steps give files survive into later steps, other stages
/// and the outputs, rootless as as root: the layer dirs keep the image's
/// owners as subordinate ids, and a directory a RUN locks away (mode 700,
/// owned by a subordinate id) is read and removed by the user namespace's
/// root. Both snapshotters; nothing is left in the store's work areas.
#[test]
fn rootless_builds_keep_the_owners_steps_give_files() {
    as_user(WITH_SUBIDS, "rootless_builds_keep_the_owners_steps_give_files", || {
        let work = tempfile::Builder::new().prefix("hoist-rootless-owners-").tempdir_in("/tmp").unwrap();
        let root = work.path().join("store");
        let rootfs = busybox_rootfs(work.path());
        hoist_ok(&root, &["import", "--change", "CMD [\"sh\"]", rootfs.to_str().unwrap(), "busybox:latest"]);
        let context = work.path().join("context");
        std::fs::create_dir(&context).unwrap();
        std::fs::write(
            context.join("Dockerfile"),
            "FROM busybox AS app\n\
             RUN mkdir -p /app/locked && echo s > /app/locked/s && chown -R 1000:1000 /app && chmod 700 /app/locked\n\
             USER 1000\n\
             RUN touch /app/x && echo t > /app/locked/t\n\
             FROM busybox\n\
             COPY --from=app /app/x /app/x\n\
             COPY --from=app /etc/passwd /p\n\
             COPY --from=app /app/locked/t /t\n\
             RUN mkdir -p /home/u/sub && chown -R 1000 /home/u && chmod 700 /home/u\n\
             COPY file /home/u/sub/file\n\
             WORKDIR /home/u/sub/work\n\
             ADD owned.tar /archive/\n",
        )
        .unwrap();
        std::fs::write(context.join("file"), "from the context\n").unwrap();
        let mut archive = tar::Builder::new(std::fs::File::create(context.join("owned.tar")).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o640);
        header.set_uid(1234);
        header.set_gid(4321);
        header.set_cksum();
        archive.append_data(&mut header, "inside", &b"abc"[..]).unwrap();
        archive.finish().unwrap();
        for snapshotter in ["overlay", "copy"] {
            let build = |target: &[&str], tar: &Path| {
                let out = Command::new(common::hoist_bin())
                    .arg("--root")
                    .arg(&root)
                    .args(["build", "--no-cache", "--progress", "plain"])
                    .args(target)
                    .args(["-o", &format!("type=tar,dest={}", tar.display())])
                    .arg(&context)
                    .env("HOIST_SNAPSHOTTER", snapshotter)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{snapshotter}: {}", common::stderr(&out));
                owners(tar)
            };
            let stage = build(&["--target", "app"], &work.path().join("app.tar"));
            for (path, expected) in [
                ("app/", (0o755, 1000, 1000)),
                ("app/locked/", (0o700, 1000, 1000)),
                ("app/locked/s", (0o644, 1000, 1000)),
                ("app/locked/t", (0o644, 1000, 0)),
                ("app/x", (0o644, 1000, 0)),
                ("etc/passwd", (0o644, 0, 0)),
            ] {
                assert_eq!(stage.get(path), Some(&expected), "{snapshotter}: {path} in {stage:?}");
            }
            let last = build(&[], &work.path().join("final.tar"));
            assert_eq!(
                last.get("app/x"),
                Some(&(0o644, 1000, 0)),
                "{snapshotter}: COPY --from keeps the owner"
            );
            assert_eq!(last.get("p"), Some(&(0o644, 0, 0)), "{snapshotter}: root's file stays root's");
            assert_eq!(
                last.get("t"),
                Some(&(0o644, 1000, 0)),
                "{snapshotter}: read from a directory locked away"
            );
            assert_eq!(last.get("home/u/"), Some(&(0o700, 1000, 0)), "{snapshotter}");
            assert_eq!(last.get("home/u/sub/file"), Some(&(0o644, 0, 0)), "{snapshotter}: copied into it");
            assert_eq!(last.get("home/u/sub/work/"), Some(&(0o755, 0, 0)), "{snapshotter}: a WORKDIR in it");
            assert_eq!(
                last.get("archive/inside"),
                Some(&(0o640, 1234, 4321)),
                "{snapshotter}: ADD keeps owners"
            );
            for area in ["snapshots/work", "snapshots/partial", "tmp"] {
                let left: Vec<_> = std::fs::read_dir(root.join(area)).unwrap().collect();
                assert!(left.is_empty(), "{snapshotter}: {area} holds {left:?}");
            }
        }
    });
}

/// Mode, uid and gid of every member of a tar, by path.
fn owners(tar: &Path) -> std::collections::BTreeMap<String, (u32, u64, u64)> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let header = entry.header();
            let mut path = String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./").to_string();
            if header.entry_type().is_dir() && !path.ends_with('/') {
                path.push('/');
            }
            (path, (header.mode().unwrap() & 0o7777, header.uid().unwrap(), header.gid().unwrap()))
        })
        .collect()
}
