//! A real Docker Engine for tests: `dockerd` from Debian's `docker.io`,
//! started on a private socket with its own data root, no bridge and no
//! iptables, and stopped (and cleaned up) when the guard drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        Dockerd::start_with(&[])
    }

    /// Like `start`, with extra daemon flags, e.g. `["--insecure-registry", "127.0.0.1:PORT"]`.
    pub fn start_with(flags: &[&str]) -> Dockerd {
        let dir = tempfile::Builder::new().prefix("hoist-dockerd-").tempdir_in("/tmp").unwrap();
        let path = dir.path();
        let log = std::fs::File::create(path.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", path.join("docker.sock").display()))
            .arg("--data-root")
            .arg(path.join("root"))
            .arg("--exec-root")
            .arg(path.join("exec"))
            .arg("--pidfile")
            .arg(path.join("docker.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd runs: install docker.io (.ci/run does)");
        let mut dockerd = Dockerd { dir, child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if dockerd.docker(&["version"]).status.success() {
                return dockerd;
            }
            if let Some(status) = dockerd.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("dockerd exited ({status}):\n{}", dockerd.log());
            }
            assert!(Instant::now() < deadline, "dockerd did not come up in 60 s:\n{}", dockerd.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker CLI runs")
    }

    /// Runs `docker ARGS…`, panicking with the output unless it succeeds.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            unsafe_kill(pid, 15);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Anything dockerd left mounted under its directories.
        let _ = Command::new("umount").arg("-R").arg("-l").arg(self.dir.path().join("root")).output();
        let _ = Command::new("umount").arg("-R").arg("-l").arg(self.dir.path().join("exec")).output();
    }
}

fn unsafe_kill(pid: i32, signal: i32) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).output();
}
