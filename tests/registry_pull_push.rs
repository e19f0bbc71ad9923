//! hoist against the real registry (CNCF distribution, started by the test
//! on loopback) in its three configurations — anonymous over HTTP, htpasswd
//! Basic auth over TLS with a CA the test made, token auth with the test's
//! token server — and against skopeo and docker on the other side.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::busybox_rootfs;
use common::dockerd::Dockerd;
use common::hoist_env::{Env, stderr};
use common::registry::{SkopeoSide, TestRegistry, busybox_oci_layout, skopeo_ok};
use common::token_server::Access;

fn inspect(env: &Env, store: &Path, name: &str) -> serde_json::Value {
    let text = env.ok_in(store, &["inspect", name]);
    serde_json::from_str::<serde_json::Value>(&text).unwrap()[0].clone()
}

/// Push from one store, pull into a fresh one, build FROM the pulled image
/// in a third, and check what `inspect` says after each.
fn round_trip(env: &Env, registry: &TestRegistry) {
    let name = registry.reference("team/busybox:1");
    let pushed = env.ok(&["push", "busybox:latest", &name]);
    let digest = pushed.split("digest: ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{pushed}");
    let repo_digests = inspect(env, &env.store(), "busybox:latest")["RepoDigests"].clone();
    assert_eq!(repo_digests, serde_json::json!([format!("{}@{digest}", registry.reference("team/busybox"))]));

    let fresh = env.work.path().join("fresh");
    let out = env.ok_in(&fresh, &["pull", &name]);
    assert_eq!(out.trim(), name);
    let pulled = inspect(env, &fresh, &name);
    assert_eq!(
        pulled["Id"],
        inspect(env, &env.store(), "busybox:latest")["Id"],
        "the same config, the same ID"
    );
    assert_eq!(pulled["RepoDigests"][0], format!("{}@{digest}", registry.reference("team/busybox")));
    let images = env.ok_in(&fresh, &["images", "--digests"]);
    assert!(images.contains(&digest), "{images}");

    let builder = env.work.path().join("builder");
    let out = env.build_in(&builder, &format!("FROM {name}\nRUN echo built > /built\n"));
    assert!(out.status.success(), "FROM a registry image:\n{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("[internal] pull {name}")), "{}", stderr(&out));
}

#[test]
fn anonymous_registry_pull_push_and_from() {
    let registry = TestRegistry::anonymous();
    let env = Env::new(Some(&registry));
    env.busybox();
    round_trip(&env, &registry);
}

#[test]
fn basic_auth_over_tls_needs_login_and_shares_docker_credentials() {
    let registry = TestRegistry::basic_tls("ada", "s3cret-pw");
    let env = Env::new(Some(&registry));
    env.busybox();
    let name = registry.reference("team/busybox:1");
    let refused = env.run(&["push", "busybox:latest", &name]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused)
            .contains(&format!("unauthorized: authentication required; run hoist login {}", registry.host())),
        "{}",
        stderr(&refused)
    );

    let wrong = env.login(&registry, "ada", "wrong");
    assert!(!wrong.status.success());
    assert!(!stderr(&wrong).contains("wrong"), "a password never shows: {}", stderr(&wrong));
    assert!(!env.docker_config().exists(), "a refused login writes nothing");
    let good = env.login(&registry, "ada", "s3cret-pw");
    assert!(good.status.success(), "{}", stderr(&good));
    assert_eq!(String::from_utf8_lossy(&good.stdout).trim(), "Login Succeeded");
    let config: serde_json::Value = serde_json::from_slice(&fs::read(env.docker_config()).unwrap()).unwrap();
    assert!(config["auths"][registry.host()]["auth"].is_string(), "docker's format: {config}");
    round_trip(&env, &registry);

    // skopeo reads what hoist wrote (Docker's auth file format).
    let mut args = vec!["inspect".to_string(), format!("--authfile={}", env.docker_config().display())];
    args.extend(registry.skopeo_args_as(SkopeoSide::Alone, None).into_iter().filter(|a| a != "--no-creds"));
    args.push(format!("docker://{name}"));
    assert!(skopeo_ok(&args).contains("\"Digest\""));

    let out = env.ok(&["logout", &registry.host()]);
    assert!(out.contains("Removing login credentials"), "{out}");
    let after = env.run_in(&env.work.path().join("again"), &["pull", &name]);
    assert!(!after.status.success(), "logged out, a pull is refused");
}

#[test]
fn a_loopback_registry_is_insecure_as_docker_treats_it() {
    // Docker skips certificate verification for loopback registries
    // (and those listed as insecure) when the CA is unknown.
    let registry = TestRegistry::basic_tls("ada", "pw");
    let mut env = Env::new(Some(&registry));
    env.certs = Some(env.work.path().join("no-certs"));
    env.busybox();
    assert!(env.login(&registry, "ada", "pw").status.success());
    env.ok(&["push", "busybox:latest", &registry.reference("insecure/busybox:1")]);
}

#[test]
fn token_auth_grants_per_scope_and_a_pull_only_user_cannot_push() {
    let registry = TestRegistry::token(&[("alice", "apw", Access::PullPush), ("bob", "bpw", Access::Pull)]);
    let env = Env::new(Some(&registry));
    env.busybox();
    let name = registry.reference("team/busybox:1");
    assert!(env.login(&registry, "bob", "bpw").status.success());
    let refused = env.run(&["push", "busybox:latest", &name]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("unauthorized"), "{}", stderr(&refused));

    assert!(env.login(&registry, "alice", "apw").status.success());
    registry.token_server().clear_requests();
    round_trip(&env, &registry);
    // A token per scope and per process, not per request.
    let requests = registry.token_server().requests();
    let push_tokens = requests.iter().filter(|r| r.scopes.iter().any(|s| s.ends_with(":pull,push"))).count();
    assert_eq!(push_tokens, 1, "{requests:?}");
    assert!(requests.iter().all(|r| r.user.as_deref() == Some("alice")), "{requests:?}");
}

#[test]
fn hoist_pushes_what_skopeo_and_docker_read_and_run() {
    let registry = TestRegistry::anonymous();
    let env = Env::new(Some(&registry));
    env.busybox();
    let context = env.work.path().join("ctx");
    fs::create_dir_all(&context).unwrap();
    fs::write(
        context.join("Dockerfile"),
        "FROM busybox\nRUN echo from-hoist > /greeting\nCMD [\"cat\", \"/greeting\"]\n",
    )
    .unwrap();
    let name = registry.reference("interop/app:1");
    env.ok(&["build", "--progress", "plain", "-t", &name, "--push", context.to_str().unwrap()]);

    let mut args = vec!["inspect".to_string()];
    args.extend(registry.skopeo_args(SkopeoSide::Alone));
    args.push(format!("docker://{name}"));
    let inspected: serde_json::Value = serde_json::from_str(&skopeo_ok(&args)).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);

    let docker = Dockerd::start_with(&["--insecure-registry", &registry.host()]);
    docker.docker_ok(&["pull", &name]);
    let out = docker.docker_ok(&["run", "--rm", "--network", "none", &name]);
    assert_eq!(out.trim(), "from-hoist");
}

#[test]
fn hoist_pulls_what_skopeo_and_docker_pushed() {
    let registry = TestRegistry::anonymous();
    let env = Env::new(Some(&registry));
    let layout = busybox_oci_layout(env.work.path());
    registry.push_with_skopeo(&layout, "from/skopeo:1");
    let out = env.build_in(
        &env.store(),
        &format!("FROM {}\nRUN echo ok > /ok\n", registry.reference("from/skopeo:1")),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // docker push of an image docker built itself.
    let docker = Dockerd::start_with(&["--insecure-registry", &registry.host()]);
    let rootfs = busybox_rootfs(env.work.path());
    let pushed = registry.reference("from/docker:1");
    let import = Command::new("/usr/bin/docker")
        .args(["-H", &format!("unix://{}", docker.socket().display()), "import", "-c", "CMD [\"sh\"]"])
        .arg(&rootfs)
        .arg(&pushed)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    docker.docker_ok(&["push", &pushed]);
    let fresh = env.work.path().join("fresh");
    env.ok_in(&fresh, &["pull", &pushed]);
    let out = env.build_in(&fresh, &format!("FROM {pushed}\nRUN ls /bin/sh\n"));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// An OCI layout whose index holds busybox for linux/amd64 and the same
/// layer for linux/386, pushed with `skopeo copy --all`.
fn push_multi_platform(env: &Env, registry: &TestRegistry, name: &str) {
    let layout = busybox_oci_layout(env.work.path());
    let dir = PathBuf::from(layout.trim_start_matches("oci:").rsplit_once(':').unwrap().0);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(&manifest_digest)).unwrap()).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    config["architecture"] = "amd64".into();
    config["os"] = "linux".into();
    let write = |bytes: Vec<u8>| {
        let digest = format!("sha256:{}", hoist::layer::Digest::sha256(&bytes).hex());
        fs::write(blob(&digest), &bytes).unwrap();
        (digest, bytes.len())
    };
    let mut entries = Vec::new();
    for arch in ["amd64", "386"] {
        config["architecture"] = arch.into();
        let (config_digest, config_size) = write(serde_json::to_vec(&config).unwrap());
        let mut platform_manifest = manifest.clone();
        platform_manifest["config"]["digest"] = config_digest.into();
        platform_manifest["config"]["size"] = config_size.into();
        let (digest, size) = write(serde_json::to_vec(&platform_manifest).unwrap());
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "platform": {"os": "linux", "architecture": arch},
        }));
    }
    let image_index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let (digest, size) = write(serde_json::to_vec(&image_index).unwrap());
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let mut args = vec!["copy".to_string(), "--all".to_string()];
    args.extend(registry.skopeo_args(SkopeoSide::Destination));
    args.push(format!("oci:{}:multi", dir.display()));
    args.push(format!("docker://{}", registry.reference(name)));
    skopeo_ok(&args);
}

#[test]
fn a_multi_platform_index_gives_this_machines_image_and_names_what_exists_otherwise() {
    let registry = TestRegistry::anonymous();
    let env = Env::new(Some(&registry));
    push_multi_platform(&env, &registry, "multi/busybox:1");
    let name = registry.reference("multi/busybox:1");
    env.ok(&["pull", "--platform", "linux/amd64", &name]);
    assert_eq!(inspect(&env, &env.store(), &name)["Architecture"], "amd64");
    let other = env.work.path().join("other");
    env.ok_in(&other, &["pull", "--platform", "linux/386", &name]);
    assert_eq!(inspect(&env, &other, &name)["Architecture"], "386");
    let out = env.run_in(&env.work.path().join("arm"), &["pull", "--platform", "linux/arm64", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains(&format!("no linux/arm64 variant in {name}; available: linux/amd64, linux/386")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_image_is_not_found_by_name() {
    let registry = TestRegistry::anonymous();
    let env = Env::new(Some(&registry));
    let name = registry.reference("nobody/here:7");
    let out = env.run(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("not found: {name}")), "{}", stderr(&out));
    let out = env.build_in(&env.store(), &format!("FROM {name}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Dockerfile:1") && stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn a_second_push_compresses_nothing_and_another_repository_mounts_the_layers() {
    let registry = TestRegistry::anonymous();
    let env = Env::new(Some(&registry));
    env.busybox();
    env.ok(&["push", "busybox:latest", &registry.reference("one/busybox:1")]);
    let before = fs::read_to_string(registry.log_path()).unwrap_or_default().len();
    env.ok(&["push", "busybox:latest", &registry.reference("two/busybox:1")]);
    let log = fs::read_to_string(registry.log_path()).unwrap_or_default();
    let log = &log[before..];
    assert!(log.contains("mount=sha256:"), "layers mounted from one/busybox: {log}");
    assert!(!log.contains("\"PATCH "), "nothing uploaded: {log}");
}

#[test]
fn zstd_compression_on_request() {
    let registry = TestRegistry::anonymous();
    let env = Env::new(Some(&registry));
    env.busybox();
    let name = registry.reference("zstd/busybox:1");
    env.ok(&["push", "--compression", "zstd", "busybox:latest", &name]);
    let mut args = vec!["inspect".to_string(), "--raw".to_string()];
    args.extend(registry.skopeo_args(SkopeoSide::Alone));
    args.push(format!("docker://{name}"));
    assert!(skopeo_ok(&args).contains("tar+zstd"));
    env.ok_in(&env.work.path().join("fresh"), &["pull", &name]);
}
