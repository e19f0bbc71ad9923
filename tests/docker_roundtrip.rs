//! Archives hoist writes are accepted by the real Docker Engine, and
//! archives Docker writes are read by hoist, keeping image IDs.

mod common;

use common::dockerd::Dockerd;
use common::{busybox_rootfs, hoist_ok};

#[test]
fn hoist_save_is_loaded_and_run_by_docker() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    let id = hoist_ok(
        &root,
        &[
            "import",
            "--change",
            "CMD [\"sh\"]",
            "--change",
            "ENV GREETING=hello",
            rootfs.to_str().unwrap(),
            "bb:test",
        ],
    );
    let id = id.trim();
    let archive = work.path().join("bb.tar");
    hoist_ok(&root, &["save", "-o", archive.to_str().unwrap(), "bb:test"]);

    let docker = Dockerd::start();
    let loaded = docker.docker_ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: bb:test"), "{loaded}");
    let docker_id = docker.docker_ok(&["inspect", "--format", "{{.Id}}", "bb:test"]);
    assert_eq!(docker_id.trim(), id, "docker's image ID must equal hoist's");
    let out = docker.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb:test",
        "sh",
        "-c",
        "echo $GREETING from busybox",
    ]);
    assert_eq!(out, "hello from busybox\n");
    let cmd = docker.docker_ok(&["inspect", "--format", "{{json .Config.Cmd}}", "bb:test"]);
    assert_eq!(cmd.trim(), "[\"sh\"]");
}

#[test]
fn docker_save_through_hoist_keeps_the_image_id() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    let docker = Dockerd::start();
    docker.docker_ok(&[
        "import",
        "--change",
        "CMD [\"echo\", \"from docker\"]",
        rootfs.to_str().unwrap(),
        "dk:1",
    ]);
    let docker_id = docker.docker_ok(&["inspect", "--format", "{{.Id}}", "dk:1"]).trim().to_string();
    let from_docker = work.path().join("from-docker.tar");
    docker.docker_ok(&["save", "-o", from_docker.to_str().unwrap(), "dk:1"]);

    let loaded = hoist_ok(&root, &["load", "-i", from_docker.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: dk:1\n");
    let inspect: serde_json::Value = serde_json::from_str(&hoist_ok(&root, &["inspect", "dk:1"])).unwrap();
    assert_eq!(inspect[0]["Id"], docker_id.as_str());

    let again = work.path().join("again.tar");
    hoist_ok(&root, &["save", "-o", again.to_str().unwrap(), "dk:1"]);
    docker.docker_ok(&["rmi", "dk:1"]);
    let reloaded = docker.docker_ok(&["load", "-i", again.to_str().unwrap()]);
    assert!(reloaded.contains("Loaded image: dk:1"), "{reloaded}");
    let id_after = docker.docker_ok(&["inspect", "--format", "{{.Id}}", "dk:1"]);
    assert_eq!(id_after.trim(), docker_id);
    let out = docker.docker_ok(&["run", "--rm", "--network", "none", "dk:1"]);
    assert_eq!(out, "from docker\n");
}
