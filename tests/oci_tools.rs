//! The store and the archives hoist writes are valid for the real OCI tools
//! (skopeo, umoci), and OCI archives those tools and buildah write load.

mod common;

use std::path::Path;
use std::process::Command;

use common::{busybox_rootfs, hoist_ok, run_ok};

fn imported(work: &Path) -> (std::path::PathBuf, String) {
    let root = work.join("store");
    let rootfs = busybox_rootfs(work);
    let id = hoist_ok(&root, &["import", "-c", "CMD [\"sh\"]", rootfs.to_str().unwrap(), "app:1"]);
    (root, id.trim().to_string())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn skopeo_reads_the_store_as_an_oci_layout() {
    let work = tempfile::tempdir().unwrap();
    let (root, _) = imported(work.path());
    let out = run_ok(
        Command::new("skopeo").arg("inspect").arg(format!("oci:{}:docker.io/library/app:1", root.display())),
    );
    let inspect = json(&out);
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    let config = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg("--config")
            .arg(format!("oci:{}:docker.io/library/app:1", root.display())),
    );
    assert_eq!(json(&config)["config"]["Cmd"], serde_json::json!(["sh"]));
}

#[test]
fn umoci_reads_the_store() {
    let work = tempfile::tempdir().unwrap();
    let (root, _) = imported(work.path());
    let tags = run_ok(Command::new("umoci").arg("ls").arg("--layout").arg(&root));
    assert_eq!(tags.trim(), "docker.io/library/app:1");
    let stat = run_ok(
        Command::new("umoci")
            .arg("stat")
            .arg("--image")
            .arg(format!("{}:docker.io/library/app:1", root.display())),
    );
    assert!(stat.contains("Imported from"), "{stat}");
}

#[test]
fn skopeo_copies_saved_archives_both_ways() {
    let work = tempfile::tempdir().unwrap();
    let (root, id) = imported(work.path());
    let archive = work.path().join("app.tar");
    hoist_ok(&root, &["save", "-o", archive.to_str().unwrap(), "app:1"]);
    let copies = work.path().join("copies");
    run_ok(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("oci:{}:from-docker-archive", copies.display())),
    );
    run_ok(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("oci:{}:from-oci-archive", copies.display())),
    );
    for tag in ["from-docker-archive", "from-oci-archive"] {
        let config = run_ok(
            Command::new("skopeo")
                .arg("inspect")
                .arg("--raw")
                .arg("--config")
                .arg(format!("oci:{}:{tag}", copies.display())),
        );
        let digest = format!("sha256:{}", sha256_hex(config.as_bytes()));
        assert_eq!(digest, id, "{tag} must keep the image ID");
    }
}

#[test]
fn skopeo_oci_archive_with_gzip_layers_loads_with_the_same_id() {
    let work = tempfile::tempdir().unwrap();
    let (root, id) = imported(work.path());
    let archive = work.path().join("skopeo.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-compress", "--dest-compress-format", "gzip"])
            .arg(format!("oci:{}:docker.io/library/app:1", root.display()))
            .arg(format!("oci-archive:{}:sk:2", archive.display())),
    );
    let other = work.path().join("other");
    assert_eq!(hoist_ok(&other, &["load", "-i", archive.to_str().unwrap()]), "Loaded image: sk:2\n");
    let inspect = json(&hoist_ok(&other, &["inspect", "sk:2"]));
    assert_eq!(inspect[0]["Id"], id.as_str());
}

#[test]
fn buildah_oci_archive_loads() {
    let work = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(work.path());
    let storage = |command: &mut Command| {
        command
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(work.path().join("buildah-root"))
            .arg("--runroot")
            .arg(work.path().join("buildah-run"));
    };
    let buildah = |args: &[&str]| {
        let mut command = Command::new("buildah");
        storage(&mut command);
        command.args(args);
        run_ok(&mut command)
    };
    let container = buildah(&["from", "scratch"]);
    let container = container.trim();
    buildah(&["add", container, rootfs.to_str().unwrap(), "/"]);
    buildah(&["config", "--cmd", "sh", "--env", "FROM=buildah", container]);
    buildah(&["commit", "-q", container, "bh:3"]);
    let archive = work.path().join("buildah.tar");
    buildah(&["push", "-q", "bh:3", &format!("oci-archive:{}:bh:3", archive.display())]);
    let root = work.path().join("store");
    assert_eq!(hoist_ok(&root, &["load", "-i", archive.to_str().unwrap()]), "Loaded image: bh:3\n");
    let inspect = json(&hoist_ok(&root, &["inspect", "bh:3"]));
    assert!(inspect[0]["Config"]["Env"].as_array().unwrap().contains(&"FROM=buildah".into()));
    let _ = Command::new("buildah")
        .arg("--storage-driver")
        .arg("vfs")
        .arg("--root")
        .arg(work.path().join("buildah-root"))
        .arg("--runroot")
        .arg(work.path().join("buildah-run"))
        .args(["rm", "--all"])
        .output();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
