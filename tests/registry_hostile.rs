//! Broken and hostile registries: the real registry behind the test's fault
//! proxy. Each case ends in success or in a clear error with a non-zero
//! exit, and a failed pull leaves the store exactly as it was. A hoist
//! killed mid-pull or mid-push leaves nothing half-written, and the same
//! command then succeeds.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Requests};
use common::hoist_env::{Env, stderr};
use common::registry::TestRegistry;

/// A registry holding busybox, behind a fault proxy; an env whose store is
/// still empty of it.
fn setup() -> (TestRegistry, FaultProxy, Env, String) {
    let registry = TestRegistry::anonymous();
    let proxy = FaultProxy::in_front_of(&registry);
    let env = Env::new(None);
    let source = env.work.path().join("source");
    let rootfs = common::busybox_rootfs(env.work.path());
    env.ok_in(&source, &["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    let name = format!("{}/hostile/busybox:1", proxy.host());
    env.ok_in(&source, &["push", "busybox:latest", &format!("{}/hostile/busybox:1", registry.host())]);
    // The store pulled into exists and holds nothing yet.
    env.ok(&["images"]);
    proxy.clear_requests();
    (registry, proxy, env, name)
}

/// Every file of the store with its content digest (tmp/ included: a failed
/// pull must not leave temp files either).
fn store_state(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in walk(root) {
        let rel = entry.strip_prefix(root).unwrap().display().to_string();
        if rel.ends_with(".lock") || rel.starts_with("cache/") {
            continue;
        }
        out.insert(rel, hoist::layer::Digest::sha256(&fs::read(&entry).unwrap()).to_string());
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

/// The digest of the image's (only) layer in the registry, so that a fault
/// hits the layer and not the config blob.
fn layer_path(registry: &TestRegistry) -> Requests {
    let url = format!("{}/v2/hostile/busybox/manifests/1", registry.url());
    let out = common::registry::curl(&["-H", "Accept: application/vnd.oci.image.manifest.v1+json", &url]);
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Requests::PathContains(manifest["layers"][0]["digest"].as_str().unwrap().to_string())
}

fn pull_fails_cleanly(env: &Env, name: &str, expect: &str) {
    let before = store_state(&env.store());
    let out = env.run(&["pull", name]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(expect), "wanted {expect:?} in:\n{}", stderr(&out));
    assert_eq!(store_state(&env.store()), before, "the store is unchanged");
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_naming_it() {
    let (_registry, proxy, env, name) = setup();
    proxy.arm(Requests::BlobGets, Fault::CorruptBody);
    pull_fails_cleanly(&env, &name, "sha256:");
    let out = env.run(&["pull", &name]);
    let text = stderr(&out);
    assert!(text.contains("has digest") && text.contains("damaged"), "{text}");
}

#[test]
fn a_manifest_over_the_limit_is_refused() {
    let (_registry, proxy, env, name) = setup();
    proxy.arm(Requests::ManifestGets, Fault::HugeManifest { bytes: 8 << 20 });
    pull_fails_cleanly(&env, &name, "is larger than the 4194304 bytes hoist accepts");
}

#[test]
fn a_redirect_loop_ends_in_an_error() {
    let (_registry, proxy, env, name) = setup();
    proxy.arm(Requests::BlobGets, Fault::RedirectLoop);
    pull_fails_cleanly(&env, &name, "too many redirects");
}

#[test]
fn server_errors_are_retried() {
    let (_registry, proxy, env, name) = setup();
    proxy.arm(Requests::ManifestGets, Fault::FailFirst { status: 500, times: 2 });
    proxy.arm(Requests::BlobGets, Fault::FailFirst { status: 503, times: 1 });
    env.ok(&["pull", &name]);
}

#[test]
fn a_connection_reset_mid_layer_is_resumed_with_range() {
    let (registry, proxy, env, name) = setup();
    proxy.arm(layer_path(&registry), Fault::ResetAfter { bytes: 100_000, times: 1 });
    env.ok(&["pull", &name]);
    let resumed: Vec<_> = proxy.requests().into_iter().filter(|r| r.range.is_some()).collect();
    assert_eq!(resumed.len(), 1, "one Range request: {:?}", proxy.requests());
    assert!(resumed[0].range.as_deref().unwrap().starts_with("bytes=100000-"), "{resumed:?}");
}

#[test]
fn a_stall_mid_layer_times_out_and_is_resumed() {
    let (registry, proxy, env, name) = setup();
    proxy.arm(layer_path(&registry), Fault::Stall { after_bytes: 50_000 });
    let env = env.with("HOIST_REGISTRY_STALL_SECONDS", "1");
    let child = env
        .command(&env.store(), &["pull", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let Requests::PathContains(layer) = layer_path(&registry) else { unreachable!() };
    wait_for(|| proxy.requests().iter().any(|r| r.path.contains(&layer)));
    // The stalled answer is under way; later requests are forwarded.
    std::thread::sleep(Duration::from_millis(300));
    proxy.clear();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(proxy.requests().iter().any(|r| r.range.is_some()), "resumed: {:?}", proxy.requests());
}

#[test]
fn a_registry_that_keeps_stalling_is_given_up_on_clearly() {
    let (_registry, proxy, env, name) = setup();
    proxy.arm(Requests::ManifestGets, Fault::Stall { after_bytes: 10 });
    let env = env.with("HOIST_REGISTRY_STALL_SECONDS", "0.5");
    pull_fails_cleanly(&env, &name, "timed out");
}

fn wait_for(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every blob's content matches its name, and `tmp/` is empty.
fn assert_store_sound(root: &Path) {
    for blob in walk(&root.join("blobs/sha256")) {
        let digest = hoist::layer::Digest::sha256(&fs::read(&blob).unwrap());
        assert_eq!(digest.hex(), blob.file_name().unwrap().to_string_lossy(), "{}", blob.display());
    }
    let left: Vec<_> = fs::read_dir(root.join("tmp")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}

#[test]
fn a_pull_killed_mid_layer_leaves_no_partial_blob_and_runs_again() {
    let (registry, proxy, env, name) = setup();
    proxy.arm(layer_path(&registry), Fault::Stall { after_bytes: 200_000 });
    let mut child = env
        .command(&env.store(), &["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| proxy.requests().iter().any(|r| r.path.contains("/blobs/")));
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    proxy.clear();
    env.ok(&["pull", &name]);
    assert_store_sound(&env.store());
    env.ok(&["inspect", &name]);
}

#[test]
fn a_push_killed_mid_upload_runs_again_and_leaves_a_valid_image() {
    let registry = TestRegistry::anonymous();
    let env = Env::new(None);
    // A layer big enough to be mid-upload when killed.
    let rootfs = env.work.path().join("big");
    fs::create_dir_all(rootfs.join("data")).unwrap();
    let mut random = vec![0u8; 48 << 20];
    fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random)).unwrap();
    fs::write(rootfs.join("data/random.bin"), &random).unwrap();
    let tarball = env.work.path().join("big.tar");
    let tarred = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(tarred.success());
    env.ok(&["import", tarball.to_str().unwrap(), "big:1"]);
    let name = registry.reference("killed/big:1");
    let before = store_state(&env.store());
    let mut child = env
        .command(&env.store(), &["push", "big:1", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| registry.log().contains("PATCH") || registry.log().contains("blobs/uploads"));
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    env.ok(&["push", "big:1", &name]);
    assert_store_sound(&env.store());
    let after = store_state(&env.store());
    let changed: Vec<_> =
        after.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
    assert_eq!(changed, vec!["index.json".to_string()], "only the repo digest was added");
    env.ok_in(&env.work.path().join("fresh"), &["pull", &name]);
}
