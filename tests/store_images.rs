//! The image commands as a user runs them against a store.

mod common;

use std::path::Path;
use std::process::Command;

use common::{busybox_rootfs, hoist, hoist_ok, run_ok, stderr};

fn imported(tag: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    let id = hoist_ok(&root, &["import", rootfs.to_str().unwrap(), tag]).trim().to_string();
    (work, root, id)
}

#[test]
fn store_is_an_oci_layout() {
    let (_work, root, id) = imported("app:1");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["annotations"]["org.opencontainers.image.ref.name"], "docker.io/library/app:1");
    let manifest_hex = entry["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap();
    assert!(root.join("blobs/sha256").join(manifest_hex).is_file());
    // The image ID is the sha256 of the config blob.
    assert!(root.join("blobs/sha256").join(&id[7..]).is_file());
}

#[test]
fn images_lists_like_docker() {
    let (_work, root, id) = imported("app:1");
    let out = hoist_ok(&root, &["images"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"), "{out}");
    assert!(lines[1].starts_with("app          1         "), "{out}");
    assert!(lines[1].contains(&id[7..19]), "{out}");
    assert!(lines[1].ends_with("MB") || lines[1].ends_with("kB"), "{out}");
    assert_eq!(hoist_ok(&root, &["images", "-q"]).trim(), &id[7..19]);
    let json: serde_json::Value =
        serde_json::from_str(hoist_ok(&root, &["images", "--format", "json"]).trim()).unwrap();
    assert_eq!(json["Repository"], "app");
    // An image no registry has seen has no repo digest, as in Docker.
    let digests = hoist_ok(&root, &["images", "--digests"]);
    assert!(digests.lines().next().unwrap().contains("DIGEST"), "{digests}");
    assert!(digests.lines().nth(1).unwrap().contains("<none>"), "{digests}");
}

#[test]
fn tag_and_resolve_by_short_id_and_prefix() {
    let (_work, root, id) = imported("app:1");
    hoist_ok(&root, &["tag", &id[7..19], "localhost:5000/team/app:v2"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&hoist_ok(&root, &["inspect", &id[7..12]])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    let tags = inspect[0]["RepoTags"].as_array().unwrap();
    assert!(
        tags.contains(&"app:1".into()) && tags.contains(&"localhost:5000/team/app:v2".into()),
        "{tags:?}"
    );
    assert!(hoist_ok(&root, &["images"]).contains("localhost:5000/team/app   v2"));
}

#[test]
fn rmi_by_id_with_several_tags_needs_force() {
    let (_work, root, id) = imported("app:1");
    hoist_ok(&root, &["tag", "app:1", "app:2"]);
    let out = hoist(&root, &["rmi", &id[7..19]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("must be forced"), "{}", stderr(&out));
    let removed = hoist_ok(&root, &["rmi", "-f", &id[7..19]]);
    assert!(removed.contains("Untagged: app:1") && removed.contains("Untagged: app:2"), "{removed}");
    assert!(removed.contains(&format!("Deleted: {id}")), "{removed}");
    assert_eq!(std::fs::read_dir(root.join("blobs/sha256")).unwrap().count(), 0, "all blobs must be gone");
}

#[test]
fn rmi_of_one_tag_keeps_the_image_for_the_other() {
    let (_work, root, id) = imported("app:1");
    hoist_ok(&root, &["tag", "app:1", "app:2"]);
    assert_eq!(hoist_ok(&root, &["rmi", "app:1"]), "Untagged: app:1\n");
    let inspect: serde_json::Value = serde_json::from_str(&hoist_ok(&root, &["inspect", "app:2"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    let out = hoist_ok(&root, &["rmi", "app:2"]);
    assert_eq!(out, format!("Untagged: app:2\nDeleted: {id}\n"));
}

#[test]
fn rmi_keeps_blobs_another_image_shares() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    hoist_ok(&root, &["import", rootfs.to_str().unwrap(), "a:1"]);
    hoist_ok(&root, &["import", "--change", "CMD [\"sh\"]", rootfs.to_str().unwrap(), "b:1"]);
    hoist_ok(&root, &["rmi", "a:1"]);
    let out = Command::new("tar").arg("-cf").arg("/dev/null").arg("-C").arg(&root).arg(".").output().unwrap();
    assert!(out.status.success());
    // b:1 still reads: its layer (shared with a:1) is still there.
    let saved = work.path().join("b.tar");
    hoist_ok(&root, &["save", "-o", saved.to_str().unwrap(), "b:1"]);
}

#[test]
fn import_applies_changes_and_records_history() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    hoist_ok(
        &root,
        &[
            "import",
            "-c",
            "ENTRYPOINT [\"/bin/sh\"]",
            "-c",
            "EXPOSE 8080",
            "-c",
            "LABEL a=b",
            "-c",
            "WORKDIR /srv",
            "-m",
            "base layer",
            rootfs.to_str().unwrap(),
            "app:1",
        ],
    );
    let inspect: serde_json::Value = serde_json::from_str(&hoist_ok(&root, &["inspect", "app:1"])).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh"]));
    assert_eq!(config["ExposedPorts"]["8080/tcp"], serde_json::json!({}));
    assert_eq!(config["Labels"]["a"], "b");
    assert_eq!(config["WorkingDir"], "/srv");
    let history = hoist_ok(&root, &["history", "app:1"]);
    assert!(history.starts_with("IMAGE          CREATED"), "{history}");
    assert!(history.contains("base layer"), "{history}");
}

#[test]
fn import_rejects_a_bad_change_before_reading_input() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let out = hoist(&root, &["import", "-c", "RUN echo", "/nonexistent.tar", "x:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("RUN cannot be applied"), "{}", stderr(&out));
}

#[test]
fn import_reads_gzip_and_zstd_tarballs_to_the_same_layer() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    run_ok(Command::new("gzip").arg("-k").arg(&rootfs));
    run_ok(Command::new("zstd").arg("-q").arg("-k").arg(&rootfs));
    let diff_id = |tag: &str| {
        let inspect: serde_json::Value = serde_json::from_str(&hoist_ok(&root, &["inspect", tag])).unwrap();
        inspect[0]["RootFS"]["Layers"][0].as_str().unwrap().to_string()
    };
    hoist_ok(&root, &["import", rootfs.to_str().unwrap(), "plain:1"]);
    hoist_ok(&root, &["import", &format!("{}.gz", rootfs.display()), "gz:1"]);
    hoist_ok(&root, &["import", &format!("{}.zst", rootfs.display()), "zst:1"]);
    assert_eq!(diff_id("plain:1"), diff_id("gz:1"));
    assert_eq!(diff_id("plain:1"), diff_id("zst:1"));
}

#[test]
fn invalid_references_quote_dockers_rule() {
    let (_work, root, _) = imported("app:1");
    let out = hoist(&root, &["tag", "app:1", "Bad/Name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid reference format: repository name (Bad/Name) must be lowercase")
            || stderr(&out).contains("must be lowercase"),
        "{}",
        stderr(&out)
    );
    let out = hoist(&root, &["tag", "app:1", "app:-bad"]);
    assert!(stderr(&out).contains("[\\w][\\w.-]{0,127}"), "{}", stderr(&out));
}

#[test]
fn unknown_image_is_a_user_error() {
    let (_work, root, _) = imported("app:1");
    let out = hoist(&root, &["inspect", "nope:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no such image: nope:1"));
}

#[test]
fn save_to_stdout_loads_back() {
    let (work, root, id) = imported("app:1");
    let out =
        Command::new(common::hoist_bin()).arg("--root").arg(&root).args(["save", "app:1"]).output().unwrap();
    assert!(out.status.success());
    let other = work.path().join("other");
    let mut child = Command::new(common::hoist_bin())
        .arg("--root")
        .arg(&other)
        .arg("load")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let loaded = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&loaded.stdout), "Loaded image: app:1\n");
    assert!(hoist_ok(&other, &["images", "-q"]).contains(&id[7..19]));
}

#[test]
fn root_flag_and_environment_choose_the_store() {
    let (work, root, _) = imported("app:1");
    let out = Command::new(common::hoist_bin()).env("HOIST_ROOT", &root).arg("images").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("app"));
    let empty = work.path().join("empty");
    let out = Command::new(common::hoist_bin())
        .env("HOIST_ROOT", &root)
        .arg("--root")
        .arg(&empty)
        .arg("images")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("app"), "--root must win over HOIST_ROOT");
}

/// Not root: the store defaults to $XDG_DATA_HOME/hoist, else ~/.local/share/hoist.
#[test]
fn unprivileged_user_gets_a_store_in_their_home() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    run_ok(Command::new("chown").arg("-R").arg("65534:65534").arg(work.path()));
    std::fs::set_permissions(work.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let as_nobody = |envs: &[(&str, &Path)]| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(common::hoist_bin())
            .arg("images");
        command.env_remove("HOIST_ROOT").env_remove("XDG_DATA_HOME");
        for (k, v) in envs {
            command.env(k, v);
        }
        run_ok(&mut command)
    };
    as_nobody(&[("HOME", &home)]);
    assert!(home.join(".local/share/hoist/oci-layout").is_file());
    let xdg = work.path().join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    run_ok(Command::new("chown").arg("65534:65534").arg(&xdg));
    as_nobody(&[("HOME", &home), ("XDG_DATA_HOME", &xdg)]);
    assert!(xdg.join("hoist/index.json").is_file());
}

#[test]
fn history_shows_empty_layer_rows_newest_first() {
    use std::io::Write as _;
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let rootfs = busybox_rootfs(work.path());
    let layer = std::fs::read(&rootfs).unwrap();
    let layer_hex = sha256_hex(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_hex}"]}},"history":[{{"created":"2024-01-02T03:04:05Z","created_by":"/bin/sh -c #(nop) ADD file:abc in / "}},{{"created":"2024-01-02T03:04:06Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true}}]}}"#
    );
    let config_hex = sha256_hex(config.as_bytes());
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":["hist:1"],"Layers":["{layer_hex}/layer.tar"]}}]"#
    );
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        (format!("{layer_hex}/layer.tar"), layer),
        (format!("{config_hex}.json"), config.into_bytes()),
        ("manifest.json".to_string(), manifest.into_bytes()),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, data.as_slice()).unwrap();
    }
    let archive = work.path().join("old-format.tar");
    std::fs::File::create(&archive).unwrap().write_all(&builder.into_inner().unwrap()).unwrap();
    assert_eq!(hoist_ok(&root, &["load", "-i", archive.to_str().unwrap()]), "Loaded image: hist:1\n");
    let history = hoist_ok(&root, &["history", "hist:1"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(lines[1].starts_with(&config_hex[..12]), "top row shows the image ID: {history}");
    assert!(lines[1].contains("/bin/sh -c #(nop)  CMD [\"sh\"]") && lines[1].contains("0B"), "{history}");
    assert!(
        lines[2].starts_with("<missing>") && lines[2].contains("/bin/sh -c #(nop) ADD file:abc in /"),
        "{history}"
    );
    assert!(lines[2].contains("MB"), "{history}");
    let full = hoist_ok(&root, &["history", "--no-trunc", "hist:1"]);
    assert!(full.contains(&format!("sha256:{config_hex}")), "{full}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
