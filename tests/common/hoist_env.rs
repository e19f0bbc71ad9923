//! hoist run as a user would, against the test registries: a store, Docker's
//! client config, hoist's config file and the registry's certificates, all
//! in a directory of the test's own.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::registry::TestRegistry;
use super::{busybox_rootfs, hoist_bin};

/// A hoist environment of its own: a store, Docker's client config, hoist's
/// config and the registry's certificates.
pub struct Env {
    /// Everything of the test's: store, configs, contexts.
    pub work: tempfile::TempDir,
    /// `HOIST_CERTS_DIR`, when set.
    pub certs: Option<PathBuf>,
    /// More environment variables.
    pub extra: Vec<(String, String)>,
}

impl Env {
    pub fn new(registry: Option<&TestRegistry>) -> Env {
        let work = tempfile::tempdir().unwrap();
        fs::create_dir_all(work.path().join("docker")).unwrap();
        Env { work, certs: registry.filter(|r| r.is_tls()).map(TestRegistry::certs_dir), extra: Vec::new() }
    }

    pub fn store(&self) -> PathBuf {
        self.work.path().join("store")
    }

    pub fn docker_config(&self) -> PathBuf {
        self.work.path().join("docker/config.json")
    }

    pub fn with(mut self, key: &str, value: &str) -> Env {
        self.extra.push((key.into(), value.into()));
        self
    }

    pub fn command(&self, store: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(hoist_bin());
        command
            .arg("--root")
            .arg(store)
            .args(args)
            .env("DOCKER_CONFIG", self.work.path().join("docker"))
            .env("HOIST_CONFIG", self.work.path().join("hoist-config.json"))
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .stdin(Stdio::null());
        if let Some(certs) = &self.certs {
            command.env("HOIST_CERTS_DIR", certs);
        }
        for (key, value) in &self.extra {
            command.env(key, value);
        }
        command
    }

    pub fn run_in(&self, store: &Path, args: &[&str]) -> Output {
        self.command(store, args).output().expect("hoist runs")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.store(), args)
    }

    pub fn ok_in(&self, store: &Path, args: &[&str]) -> String {
        let out = self.run_in(store, args);
        assert!(out.status.success(), "hoist {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(&self.store(), args)
    }

    /// Imports busybox into the store as `busybox:latest`.
    pub fn busybox(&self) {
        let rootfs = busybox_rootfs(self.work.path());
        self.ok(&["import", "-c", "CMD [\"sh\"]", rootfs.to_str().unwrap(), "busybox:latest"]);
    }

    pub fn login(&self, registry: &TestRegistry, user: &str, password: &str) -> Output {
        let mut command =
            self.command(&self.store(), &["login", "-u", user, "--password-stdin", &registry.host()]);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// A context with `dockerfile`, built into `store` as `out:1`.
    pub fn build_in(&self, store: &Path, dockerfile: &str) -> Output {
        let dir = tempfile::tempdir_in(self.work.path()).unwrap().keep();
        fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        self.run_in(store, &["build", "--progress", "plain", "-t", "out:1", dir.to_str().unwrap()])
    }
}

/// A command's standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
