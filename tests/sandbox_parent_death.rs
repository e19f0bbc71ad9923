//! When hoist itself is SIGKILLed mid-run, the sandboxed tree dies and no
//! mount or mount point remains. The test binary re-executes itself as the
//! "hoist" that gets killed.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hoist::sandbox::{Output, RootFs, SandboxSpec, run};

const HELPER_ENV: &str = "HOIST_SANDBOX_PARENT_DEATH_ROOT";
const MARKER: &str = "987654";

fn helper(root: &str) {
    let mut spec = SandboxSpec::new(
        RootFs::Dir(root.into()),
        common::sandbox::argv(&[
            "/bin/sh",
            "-c",
            &format!("sleep {MARKER} & echo ready; exec sleep {MARKER}"),
        ]),
    );
    spec.output = Output::Capture(Box::new(|_, bytes| {
        let mut out = std::io::stdout();
        out.write_all(bytes).unwrap();
        out.flush().unwrap();
    }));
    let _ = run(spec);
    std::process::exit(0);
}

fn sandboxed_sleepers() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c == format!("sleep\0{MARKER}\0").as_bytes())
        })
        .count()
}

fn killing_hoist_kills_the_sandbox_and_leaves_no_mount() -> Result<(), String> {
    let root = common::sandbox::rootfs();
    let before_root = common::sandbox::entries(root.path());
    let mounts = common::sandbox::host_mounts();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(HELPER_ENV, root.path())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = (|| {
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).map_err(|e| e.to_string())?;
        if line != "ready\n" {
            return Err(format!("helper said {line:?}"));
        }
        let start = Instant::now();
        while sandboxed_sleepers() != 2 {
            if start.elapsed() > Duration::from_secs(5) {
                return Err(format!("expected 2 sandboxed sleepers, found {}", sandboxed_sleepers()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    })();
    // SIGKILL: the helper gets no chance to clean up.
    child.kill().map_err(|e| e.to_string())?;
    child.wait().map_err(|e| e.to_string())?;
    started?;
    let start = Instant::now();
    while sandboxed_sleepers() > 0 || common::sandbox::entries(root.path()) != before_root {
        if start.elapsed() > Duration::from_secs(5) {
            return Err(format!(
                "after 5 s: {} sleepers alive, root has {:?}",
                sandboxed_sleepers(),
                common::sandbox::entries(root.path())
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if common::sandbox::host_mounts() != mounts {
        return Err("host mounts changed".into());
    }
    Ok(())
}

type TestFn = fn() -> Result<(), String>;

fn main() {
    if let Ok(root) = std::env::var(HELPER_ENV) {
        helper(&root);
    }
    let tests: [(&str, TestFn); 1] = [(
        "killing_hoist_kills_the_sandbox_and_leaves_no_mount",
        killing_hoist_kills_the_sandbox_and_leaves_no_mount,
    )];
    let mut failed = 0;
    for (name, t) in tests {
        match t() {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                println!("test {name} ... FAILED: {e}");
                failed += 1;
            }
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
