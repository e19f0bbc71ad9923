//! How hoist reaches registries: HTTP proxies from the environment (and
//! around them for NO_PROXY), registries reached by name through a proxy
//! with their own CA, TLS errors that say where CAs are looked for, and
//! Docker Hub mirrors that serve or fail over to the origin.
//!
//! The proxy is the test's own forward proxy; it maps names that do not
//! resolve (`registry.hoist.test`, `registry-1.docker.io`) onto registries
//! on loopback, so a request that succeeds went through it.

mod common;

use std::fs;

use common::forward_proxy::{FAKE_REGISTRY_HOST, ForwardProxy};
use common::hoist_env::{Env, stderr};
use common::registry::TestRegistry;

/// `registry.hoist.test:<port>`, mapped by `proxy` onto `registry`.
fn by_name(proxy: &ForwardProxy, registry: &TestRegistry) -> String {
    let port = registry.host().rsplit_once(':').unwrap().1.to_string();
    let name = format!("{FAKE_REGISTRY_HOST}:{port}");
    proxy.map(&name, &registry.host());
    name
}

#[test]
fn requests_go_through_the_proxy_of_their_scheme() {
    let registry = TestRegistry::basic_tls("ada", "pw");
    let proxy = ForwardProxy::start();
    let name = by_name(&proxy, &registry);
    registry.trust_as(&name);
    let env =
        Env::new(Some(&registry)).with("HTTPS_PROXY", &proxy.url()).with("HTTP_PROXY", "http://127.0.0.1:9");
    env.busybox();
    let login = {
        let mut command = env.command(&env.store(), &["login", "-u", "ada", "--password-stdin", &name]);
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"pw").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(login.status.success(), "{}", stderr(&login));
    env.ok(&["push", "busybox:latest", &format!("{name}/proxied/busybox:1")]);
    env.ok_in(&env.work.path().join("fresh"), &["pull", &format!("{name}/proxied/busybox:1")]);
    assert!(proxy.authorities().iter().all(|a| a == &name), "{:?}", proxy.authorities());
    assert!(proxy.requests().len() >= 2, "the push and the pull went through the proxy");
}

#[test]
fn no_proxy_sends_requests_around_the_proxy() {
    let registry = TestRegistry::anonymous();
    let proxy = ForwardProxy::start();
    let name = by_name(&proxy, &registry);
    let env = Env::new(Some(&registry))
        .with("HTTPS_PROXY", &proxy.url())
        .with("HTTP_PROXY", &proxy.url())
        .with("NO_PROXY", "hoist.test");
    let out = env.run(&["--insecure-registry", &name, "pull", &format!("{name}/any:1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(FAKE_REGISTRY_HOST), "{}", stderr(&out));
    assert!(proxy.requests().is_empty(), "nothing went through the proxy: {:?}", proxy.requests());
}

#[test]
fn an_insecure_registry_by_name_is_reached_over_http_through_the_proxy() {
    let registry = TestRegistry::anonymous();
    let proxy = ForwardProxy::start();
    let name = by_name(&proxy, &registry);
    let env = Env::new(Some(&registry)).with("HTTPS_PROXY", &proxy.url()).with("HTTP_PROXY", &proxy.url());
    env.busybox();
    let target = format!("{name}/plain/busybox:1");
    let refused = env.run(&["push", "busybox:latest", &target]);
    assert_eq!(refused.status.code(), Some(1), "not insecure: HTTPS only");
    env.ok(&["--insecure-registry", &name, "push", "busybox:latest", &target]);
    fs::write(env.work.path().join("hoist-config.json"), format!(r#"{{"insecure-registries":["{name}"]}}"#))
        .unwrap();
    env.ok_in(&env.work.path().join("fresh"), &["pull", &target]);
}

#[test]
fn an_unknown_ca_fails_naming_the_host_and_where_hoist_looked() {
    let registry = TestRegistry::basic_tls("ada", "pw");
    let proxy = ForwardProxy::start();
    let name = by_name(&proxy, &registry);
    let mut env = Env::new(Some(&registry)).with("HTTPS_PROXY", &proxy.url());
    let empty = env.work.path().join("certs.d");
    fs::create_dir_all(&empty).unwrap();
    env.certs = Some(empty.clone());
    let out = env.run(&["pull", &format!("{name}/any:1")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains(&format!("TLS with {name} failed")), "{text}");
    assert!(text.contains(&empty.join(&name).display().to_string()), "names the CA folder: {text}");
}

/// Docker Hub's origin, played by a TLS registry that the proxy answers
/// for as `registry-1.docker.io`; `library/busybox:latest` in it.
struct Hub {
    origin: TestRegistry,
    proxy: ForwardProxy,
}

fn hub(env_for_push: impl Fn(&Hub) -> Env) -> (Hub, Env) {
    let origin = TestRegistry::basic_tls("hub", "hubpw");
    let proxy = ForwardProxy::start();
    proxy.map("registry-1.docker.io:443", &origin.host());
    origin.trust_as("registry-1.docker.io");
    let hub = Hub { origin, proxy };
    let env = env_for_push(&hub);
    (hub, env)
}

#[test]
fn mirrors_serve_docker_hub_images_and_a_failing_one_falls_back() {
    let (hub, env) = hub(|hub| Env::new(Some(&hub.origin)).with("HTTPS_PROXY", &hub.proxy.url()));
    env.busybox();
    // Docker Hub's credentials are filed under its v1 key, as docker does.
    let login = {
        let mut command = env.command(&env.store(), &["login", "-u", "hub", "--password-stdin"]);
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"hubpw").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(login.status.success(), "{}", stderr(&login));
    let config = fs::read_to_string(env.docker_config()).unwrap();
    assert!(config.contains("https://index.docker.io/v1/"), "{config}");
    env.ok(&["push", "busybox:latest"]);

    let mirror = TestRegistry::anonymous();
    env.ok(&["push", "busybox:latest", &mirror.reference("library/busybox:latest")]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    fs::write(
        env.work.path().join("hoist-config.json"),
        format!(r#"{{"registry-mirrors":["http://{dead}","{}"]}}"#, mirror.url()),
    )
    .unwrap();
    let before = hub.origin.log();
    let out = env.run_in(&env.work.path().join("mirrored"), &["pull", "busybox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mirror") && stderr(&out).contains("failed"),
        "the dead mirror is reported: {}",
        stderr(&out)
    );
    let after = hub.origin.log();
    assert!(
        !after[before.len()..].contains("/blobs/"),
        "the origin served no blob:\n{}",
        &after[before.len()..]
    );

    // Only a failing mirror: the origin serves.
    fs::write(
        env.work.path().join("hoist-config.json"),
        format!(r#"{{"registry-mirrors":["http://{dead}"]}}"#),
    )
    .unwrap();
    let out = env.run_in(&env.work.path().join("origin"), &["pull", "busybox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(hub.origin.log()[after.len()..].contains("/blobs/"), "the origin served the layers");
}
