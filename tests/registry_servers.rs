//! The servers the registry tests stand on work with real clients (skopeo,
//! curl, dockerd), independently of hoist's own registry client: the real
//! registry in its three auth modes, the token server's grants, each fault
//! of the fault proxy, and the forward proxy's CONNECT and absolute-form paths.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;

use common::dockerd::Dockerd;
use common::fault_proxy::{Fault, FaultProxy, Requests};
use common::forward_proxy::{FAKE_REGISTRY_HOST, ForwardProxy};
use common::registry::{SkopeoSide, TestRegistry, busybox_oci_layout, curl, skopeo, skopeo_ok};
use common::token_server::{Access, TOKEN_ISSUER, TOKEN_SERVICE, TokenServer};

const OCI_MANIFEST: &str = "Accept: application/vnd.oci.image.manifest.v1+json";

/// The busybox image pushed to a registry: what a test needs to fetch it by hand.
struct Pushed {
    manifest_digest: String,
    layer_digest: String,
    layer: Vec<u8>,
}

/// Makes the busybox OCI layout under `work` and reads its manifest and layer.
fn busybox_image(work: &Path) -> (String, Pushed) {
    let reference = busybox_oci_layout(work);
    let layout = work.join("busybox-oci");
    let (manifest_digest, manifest) = only_manifest(&layout);
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let layer = std::fs::read(blob_path(&layout, &layer_digest)).unwrap();
    (reference, Pushed { manifest_digest, layer_digest, layer })
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

/// The digest and content of the one manifest an OCI layout's index lists.
fn only_manifest(layout: &Path) -> (String, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest = serde_json::from_slice(&std::fs::read(blob_path(layout, &digest)).unwrap()).unwrap();
    (digest, manifest)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// What curl got: the status (0 when none), the body, and curl's exit code.
struct Fetched {
    status: u16,
    body: Vec<u8>,
    exit: i32,
    stderr: String,
}

/// `curl ARGS… URL`, the body kept in a file so that a cut-off body is kept as far as it came.
fn fetch(url: &str, args: &[&str]) -> Fetched {
    let out_dir = tempfile::tempdir().unwrap();
    let body_file = out_dir.path().join("body");
    let body_path = body_file.to_str().unwrap();
    let mut all = vec!["--output", body_path, "--write-out", "%{http_code}"];
    all.extend_from_slice(args);
    all.push(url);
    let out = curl(&all);
    Fetched {
        status: String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0),
        body: std::fs::read(&body_file).unwrap_or_default(),
        exit: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Pulls `name` from `registry` into a new OCI layout and returns its manifest digest.
fn pull_manifest_digest(registry: &TestRegistry, name: &str, work: &Path) -> String {
    let layout = work.join("pulled");
    registry.pull_with_skopeo(name, &format!("oci:{}:pulled", layout.display()));
    only_manifest(&layout).0
}

fn skopeo_copy(args: Vec<String>, source: &str, destination: &str) -> std::process::Output {
    let mut all = vec!["copy".to_string()];
    all.extend(args);
    all.extend([source.to_string(), destination.to_string()]);
    skopeo(&all)
}

#[test]
fn skopeo_round_trips_an_image_through_the_anonymous_registry() {
    let work = tempfile::tempdir().unwrap();
    let (image, pushed) = busybox_image(work.path());
    let registry = TestRegistry::anonymous();
    registry.push_with_skopeo(&image, "test/busybox:1");

    assert_eq!(pull_manifest_digest(&registry, "test/busybox:1", work.path()), pushed.manifest_digest);
    let tags = fetch(&format!("{}/v2/test/busybox/tags/list", registry.url()), &[]);
    assert_eq!(tags.status, 200, "{}\n{}", tags.stderr, registry.log());
    assert_eq!(String::from_utf8_lossy(&tags.body).trim(), r#"{"name":"test/busybox","tags":["1"]}"#);
}

#[test]
fn skopeo_round_trips_an_image_through_the_basic_tls_registry() {
    let work = tempfile::tempdir().unwrap();
    let (image, pushed) = busybox_image(work.path());
    let registry = TestRegistry::basic_tls("carol", "s3cret");
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    assert!(registry.certs_dir().join(registry.host()).join("ca.crt").is_file());
    registry.push_with_skopeo(&image, "test/busybox:1");

    assert_eq!(pull_manifest_digest(&registry, "test/busybox:1", work.path()), pushed.manifest_digest);
}

#[test]
fn basic_tls_registry_wants_its_ca_and_the_password() {
    let registry = TestRegistry::basic_tls("carol", "s3cret");
    let url = format!("{}/v2/", registry.url());
    let ca = registry.ca_file().unwrap().to_str().unwrap().to_string();

    let untrusted = fetch(&url, &["--user", "carol:s3cret"]);
    assert_eq!(untrusted.exit, 60, "curl must refuse a certificate from an unknown CA: {}", untrusted.stderr);
    assert_eq!(fetch(&url, &["--cacert", &ca]).status, 401);
    assert_eq!(fetch(&url, &["--cacert", &ca, "--user", "carol:wrong"]).status, 401);
    let good = fetch(&url, &["--cacert", &ca, "--user", "carol:s3cret"]);
    assert_eq!(good.status, 200, "{}\n{}", good.stderr, registry.log());
}

#[test]
fn token_registry_lets_alice_push_and_refuses_bob() {
    let work = tempfile::tempdir().unwrap();
    let (image, pushed) = busybox_image(work.path());
    let registry = TestRegistry::token(&[("alice", "pw-a", Access::PullPush), ("bob", "pw-b", Access::Pull)]);
    let destination = format!("docker://{}", registry.reference("test/busybox:1"));

    let as_bob = skopeo_copy(
        registry.skopeo_args_as(SkopeoSide::Destination, Some(("bob", "pw-b"))),
        &image,
        &destination,
    );
    assert!(!as_bob.status.success(), "bob may only pull, yet his push succeeded");
    let bobs = registry.token_server().requests();
    assert!(
        bobs.iter().any(|r| r.user.as_deref() == Some("bob")
            && r.scopes.iter().any(|s| s == "repository:test/busybox:pull,push")
            && r.granted == ["repository:test/busybox:pull"]),
        "bob asked for pull,push and got pull only: {bobs:#?}"
    );

    let as_alice = skopeo_copy(registry.skopeo_args(SkopeoSide::Destination), &image, &destination);
    assert!(as_alice.status.success(), "{}\n{}", String::from_utf8_lossy(&as_alice.stderr), registry.log());

    let layout = work.path().join("pulled-by-bob");
    skopeo_ok(
        &[
            vec!["copy".to_string()],
            registry.skopeo_args_as(SkopeoSide::Source, Some(("bob", "pw-b"))),
            vec![destination.clone(), format!("oci:{}:pulled", layout.display())],
        ]
        .concat(),
    );
    assert_eq!(only_manifest(&layout).0, pushed.manifest_digest);
}

#[test]
fn token_registry_refuses_anonymous_and_wrong_passwords() {
    let work = tempfile::tempdir().unwrap();
    let (image, _) = busybox_image(work.path());
    let registry = TestRegistry::token(&[("alice", "pw-a", Access::PullPush)]);
    registry.push_with_skopeo(&image, "test/busybox:1");
    let source = format!("docker://{}", registry.reference("test/busybox:1"));
    let inspect = |user: Option<(&str, &str)>| {
        skopeo(
            &[
                vec!["inspect".to_string()],
                registry.skopeo_args_as(SkopeoSide::Alone, user),
                vec![source.clone()],
            ]
            .concat(),
        )
    };

    assert!(!inspect(None).status.success(), "anonymous clients get nothing by default");
    registry.token_server().clear_requests();
    assert!(!inspect(Some(("alice", "wrong"))).status.success());
    let requests = registry.token_server().requests();
    assert!(requests.iter().all(|r| r.status == 401 && r.user.as_deref() == Some("alice")), "{requests:#?}");

    registry.token_server().set_anonymous(Access::Pull);
    let anonymous = inspect(None);
    assert!(anonymous.status.success(), "{}", String::from_utf8_lossy(&anonymous.stderr));
}

/// Decodes the claims of a JWT without checking it (the registry checks it).
fn jwt_claims(token: &str) -> serde_json::Value {
    let claims = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

#[test]
fn token_server_grants_each_scope_only_the_users_actions() {
    let server = TokenServer::start(&[("alice", "pw-a", Access::PullPush), ("bob", "pw-b", Access::Pull)]);
    let url = format!(
        "{}?service={TOKEN_SERVICE}&scope=repository:a/one:pull,push&scope=repository:b/two:pull",
        server.realm()
    );
    server.set_expires_in(7);

    let answer = fetch(&url, &["--user", "bob:pw-b"]);
    assert_eq!(answer.status, 200, "{}", answer.stderr);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["token"], json["access_token"]);
    assert_eq!(json["expires_in"], 7);
    assert!(json["issued_at"].as_str().unwrap().ends_with('Z'), "{json}");
    let claims = jwt_claims(json["token"].as_str().unwrap());
    assert_eq!(claims["iss"], TOKEN_ISSUER);
    assert_eq!(claims["aud"], TOKEN_SERVICE);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(
        claims["access"],
        serde_json::json!([
            {"type": "repository", "name": "a/one", "actions": ["pull"]},
            {"type": "repository", "name": "b/two", "actions": ["pull"]},
        ])
    );
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(json["token"].as_str().unwrap().split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["x5c"].as_array().unwrap().len(), 1);

    assert_eq!(fetch(&url, &["--user", "bob:nope"]).status, 401);
    let anonymous = fetch(&url, &[]);
    let claims = jwt_claims(
        serde_json::from_slice::<serde_json::Value>(&anonymous.body).unwrap()["token"].as_str().unwrap(),
    );
    assert_eq!(claims["access"], serde_json::json!([]), "anonymous clients get nothing by default");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].scopes, ["repository:a/one:pull,push", "repository:b/two:pull"]);
    assert_eq!(requests[0].service.as_deref(), Some(TOKEN_SERVICE));
    assert!(requests.iter().all(|r| !r.path_and_query.contains("pw-b")));
    assert_eq!(requests.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 401, 200]);
}

/// A registry with busybox pushed, and a fault proxy in front of it.
fn registry_behind_fault_proxy(work: &Path) -> (TestRegistry, FaultProxy, Pushed) {
    let (image, pushed) = busybox_image(work);
    let registry = TestRegistry::anonymous();
    registry.push_with_skopeo(&image, "test/busybox:1");
    let proxy = FaultProxy::in_front_of(&registry);
    (registry, proxy, pushed)
}

#[test]
fn fault_proxy_forwards_a_skopeo_pull_unchanged_when_nothing_is_armed() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, proxy, pushed) = registry_behind_fault_proxy(work.path());
    let layout = work.path().join("through-proxy");
    skopeo_ok(&[
        "copy".into(),
        "--src-tls-verify=false".into(),
        format!("docker://{}/test/busybox:1", proxy.host()),
        format!("oci:{}:pulled", layout.display()),
    ]);
    assert_eq!(only_manifest(&layout).0, pushed.manifest_digest);
    let requests = proxy.requests();
    let blob_path = format!("/v2/test/busybox/blobs/{}", pushed.layer_digest);
    assert!(requests.iter().any(|r| r.method == "GET" && r.path == blob_path), "{requests:#?}");
}

#[test]
fn fault_proxy_forwards_a_skopeo_push_unchanged_when_nothing_is_armed() {
    let work = tempfile::tempdir().unwrap();
    let (image, pushed) = busybox_image(work.path());
    let registry = TestRegistry::token(&[("alice", "pw-a", Access::PullPush)]);
    let proxy = FaultProxy::in_front_of(&registry);
    skopeo_ok(&[
        "copy".into(),
        "--dest-tls-verify=false".into(),
        "--dest-creds=alice:pw-a".into(),
        image,
        format!("docker://{}/test/busybox:1", proxy.host()),
    ]);

    assert_eq!(pull_manifest_digest(&registry, "test/busybox:1", work.path()), pushed.manifest_digest);
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/")),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.method == "PUT" && r.path == "/v2/test/busybox/manifests/1"),
        "{requests:#?}"
    );
}

#[test]
fn fail_first_answers_the_status_then_forwards() {
    let work = tempfile::tempdir().unwrap();
    let (registry, proxy, pushed) = registry_behind_fault_proxy(work.path());
    let url = format!("{}/v2/test/busybox/manifests/1", proxy.url());
    proxy.arm(Requests::ManifestGets, Fault::FailFirst { status: 500, times: 2 });

    assert_eq!(fetch(&url, &["-H", OCI_MANIFEST]).status, 500);
    assert_eq!(fetch(&url, &["-H", OCI_MANIFEST]).status, 500);
    let third = fetch(&url, &["-H", OCI_MANIFEST]);
    assert_eq!(third.status, 200, "{}\n{}", third.stderr, registry.log());
    assert_eq!(sha256(&third.body), pushed.manifest_digest);
}

#[test]
fn reset_after_cuts_the_body_and_a_range_request_gets_the_registrys_206() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, proxy, pushed) = registry_behind_fault_proxy(work.path());
    let url = format!("{}/v2/test/busybox/blobs/{}", proxy.url(), pushed.layer_digest);
    proxy.arm(Requests::BlobGets, Fault::ResetAfter { bytes: 100_000, times: 1 });

    let cut = fetch(&url, &[]);
    assert_eq!(cut.exit, 56, "curl must see the connection reset: {}", cut.stderr);
    assert_eq!(cut.status, 200);
    assert_eq!(cut.body, pushed.layer[..100_000]);

    let rest = fetch(&url, &["-H", "Range: bytes=100000-"]);
    assert_eq!(rest.status, 206, "{}", rest.stderr);
    assert_eq!(rest.body, pushed.layer[100_000..]);
    let requests = proxy.requests();
    assert_eq!(requests.last().unwrap().range.as_deref(), Some("bytes=100000-"));
}

#[test]
fn corrupt_body_keeps_the_length_and_breaks_the_digest() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, proxy, pushed) = registry_behind_fault_proxy(work.path());
    let url = format!("{}/v2/test/busybox/blobs/{}", proxy.url(), pushed.layer_digest);
    proxy.arm(Requests::BlobGets, Fault::CorruptBody);

    let corrupt = fetch(&url, &[]);
    assert_eq!((corrupt.status, corrupt.exit), (200, 0), "{}", corrupt.stderr);
    assert_eq!(corrupt.body.len(), pushed.layer.len());
    assert_ne!(sha256(&corrupt.body), pushed.layer_digest);

    proxy.clear();
    assert_eq!(sha256(&fetch(&url, &[]).body), pushed.layer_digest, "cleared faults forward unchanged");
}

#[test]
fn stall_sends_part_of_the_body_then_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, proxy, pushed) = registry_behind_fault_proxy(work.path());
    let url = format!("{}/v2/test/busybox/blobs/{}", proxy.url(), pushed.layer_digest);
    proxy.arm(Requests::BlobGets, Fault::Stall { after_bytes: 4096 });

    let started = std::time::Instant::now();
    let stalled = fetch(&url, &["--max-time", "2"]);
    assert_eq!(stalled.exit, 28, "curl gives up on its own timeout: {}", stalled.stderr);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert_eq!(stalled.body, pushed.layer[..4096]);
}

#[test]
fn redirect_loop_sends_the_client_back_to_the_same_url() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, proxy, pushed) = registry_behind_fault_proxy(work.path());
    let url = format!("{}/v2/test/busybox/blobs/{}", proxy.url(), pushed.layer_digest);
    proxy.arm(Requests::BlobGets, Fault::RedirectLoop);

    let once = curl(&["--output", "/dev/null", "--write-out", "%{http_code} %{redirect_url}", &url]);
    assert_eq!(String::from_utf8_lossy(&once.stdout), format!("307 {url}"));
    let followed = fetch(&url, &["--location", "--max-redirs", "5"]);
    assert_eq!(followed.exit, 47, "curl stops at its redirect limit: {}", followed.stderr);
    assert_eq!(proxy.requests().len(), 1 + 6);
}

#[test]
fn huge_manifest_answers_an_oversized_body() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, proxy, _) = registry_behind_fault_proxy(work.path());
    let url = format!("{}/v2/test/busybox/manifests/1", proxy.url());
    proxy.arm(Requests::ManifestGets, Fault::HugeManifest { bytes: 8 << 20 });

    let huge = fetch(&url, &["-H", OCI_MANIFEST]);
    assert_eq!((huge.status, huge.exit), (200, 0), "{}", huge.stderr);
    assert_eq!(huge.body.len(), 8 << 20);
    let json: serde_json::Value = serde_json::from_slice(&huge.body).unwrap();
    assert_eq!(json["schemaVersion"], 2);
}

#[test]
fn forward_proxy_reaches_the_registry_by_a_fake_name() {
    let registry = TestRegistry::anonymous();
    let proxy = ForwardProxy::start();
    let fake = format!("{FAKE_REGISTRY_HOST}:5000");
    proxy.map(&fake, &registry.host());
    let url = format!("http://{fake}/v2/");

    let direct = fetch(&url, &["--noproxy", "*"]);
    assert_eq!(direct.exit, 6, "{FAKE_REGISTRY_HOST} must not resolve: {}", direct.stderr);
    let proxied = fetch(&url, &["--proxy", &proxy.url()]);
    assert_eq!(proxied.status, 200, "{}\n{}", proxied.stderr, registry.log());
    assert_eq!(proxy.authorities(), [fake]);
    assert_eq!(proxy.requests()[0].target, url);
}

#[test]
fn forward_proxy_tunnels_https_with_connect() {
    let registry = TestRegistry::basic_tls("carol", "s3cret");
    let proxy = ForwardProxy::start();
    let fake = format!("{FAKE_REGISTRY_HOST}:5000");
    proxy.map(&fake, &registry.host());
    let ca = registry.ca_file().unwrap().to_str().unwrap().to_string();

    let proxied = fetch(
        &format!("https://{fake}/v2/"),
        &["--proxy", &proxy.url(), "--cacert", &ca, "--user", "carol:s3cret"],
    );
    assert_eq!(proxied.status, 200, "{}\n{}", proxied.stderr, registry.log());
    let requests = proxy.requests();
    assert_eq!((requests[0].method.as_str(), requests[0].target.as_str()), ("CONNECT", fake.as_str()));
}

#[test]
fn skopeo_pulls_through_the_forward_proxy_by_the_fake_name() {
    let work = tempfile::tempdir().unwrap();
    let (image, pushed) = busybox_image(work.path());
    let registry = TestRegistry::basic_tls("carol", "s3cret");
    registry.push_with_skopeo(&image, "test/busybox:1");
    let proxy = ForwardProxy::start();
    let fake = format!("{FAKE_REGISTRY_HOST}:5000");
    proxy.map(&fake, &registry.host());
    registry.trust_as(&fake);

    let layout = work.path().join("via-proxy");
    let out = std::process::Command::new("skopeo")
        .env("HTTPS_PROXY", proxy.url())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args(["copy", "--src-creds", "carol:s3cret"])
        .arg(format!("--src-cert-dir={}", registry.certs_dir().join(&fake).display()))
        .arg(format!("docker://{fake}/test/busybox:1"))
        .arg(format!("oci:{}:pulled", layout.display()))
        .output()
        .expect("skopeo runs: install Debian's skopeo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(only_manifest(&layout).0, pushed.manifest_digest);
    assert!(proxy.requests().iter().all(|r| r.method == "CONNECT" && r.authority == fake));
}

#[test]
fn dockerd_started_with_extra_flags_pulls_from_the_test_registry() {
    let work = tempfile::tempdir().unwrap();
    let (image, pushed) = busybox_image(work.path());
    let registry = TestRegistry::anonymous();
    registry.push_with_skopeo(&image, "test/busybox:1");

    let docker = Dockerd::start_with(&["--insecure-registry", &registry.host()]);
    let insecure = docker.docker_ok(&["info", "--format", "{{json .RegistryConfig.IndexConfigs}}"]);
    assert!(insecure.contains(&registry.host()), "{insecure}");
    let reference = registry.reference("test/busybox:1");
    docker.docker_ok(&["pull", &reference]);
    let digests = docker.docker_ok(&["inspect", "--format", "{{json .RepoDigests}}", &reference]);
    assert!(digests.contains(&pushed.manifest_digest), "{digests}");
}
