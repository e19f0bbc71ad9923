//! `hoist build` as an unprivileged user: the README's first command, run
//! by a user the test creates, with the store in a directory it owns. A
//! kernel that forbids unprivileged user namespaces fails the test with the
//! reason.

mod common;

use std::path::Path;

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
