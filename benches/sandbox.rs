//! Start→exit latency of one sandboxed `/bin/true`, next to `runc run` of an
//! equivalent OCI bundle measured in the same run. Prints a table of medians.
//! Rows with the snapshot module add a fresh working root before and the
//! layer diff after, the whole cost of a RUN step besides the command.
//! `HOIST_BENCH_RUNS` sets the runs per row (default 200).

#[path = "../tests/common/sandbox.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hoist::layer::{Compression, write_dir};
use hoist::sandbox::{Network, Output, RootFs, SandboxSpec, run};
use hoist::snapshot::{LayerBlob, Snapshots, Snapshotter};
use hoist::store::Store;

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.1), at(0.9))
}

fn bench(runs: usize, mut f: impl FnMut()) -> (Duration, Duration, Duration) {
    for _ in 0..20 {
        f();
    }
    stats(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn sandbox_once(root: RootFs, network: Network) {
    let mut spec = SandboxSpec::new(root, vec!["/bin/true".into()]);
    spec.network = network;
    spec.output = Output::Null;
    let out = run(spec).expect("sandbox run");
    assert!(out.status.success());
}

fn runc_binary() -> Option<&'static str> {
    ["/usr/sbin/runc", "/usr/bin/runc"].into_iter().find(|p| Path::new(p).exists())
}

fn runc_bundle(dir: &Path) -> bool {
    common::populate_rootfs(&dir.join("rootfs"));
    let Some(runc) = runc_binary() else { return false };
    if !Command::new(runc).arg("spec").current_dir(dir).status().is_ok_and(|s| s.success()) {
        return false;
    }
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config =
        config.replace("\"terminal\": true", "\"terminal\": false").replacen("\"sh\"", "\"/bin/true\"", 1);
    std::fs::write(dir.join("config.json"), config).unwrap();
    true
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::var("HOIST_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 3 } else { 200 });
    let root = common::rootfs();
    let layers = tempfile::tempdir().unwrap();
    let (upper, work) = (layers.path().join("upper"), layers.path().join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let overlay = RootFs::Overlay { lower: vec![root.path().to_path_buf()], upper, work };
    let dir = RootFs::Dir(root.path().to_path_buf());

    let mut rows: Vec<(String, (Duration, Duration, Duration))> = Vec::new();
    let bundle = tempfile::tempdir().unwrap();
    let have_runc = !hoist::idmap::rootless() && runc_bundle(bundle.path());
    // Freshly written roots would otherwise be written back during the
    // first rows and slow them down.
    rustix::fs::sync();
    for (name, rootfs) in [("dir", &dir), ("overlay", &overlay)] {
        for (net_name, net) in [("none", Network::None), ("host", Network::Host)] {
            let r = bench(runs, || sandbox_once(rootfs.clone(), net));
            rows.push((format!("hoist sandbox, {name} root, network {net_name}"), r));
        }
    }
    // The whole RUN cycle: a fresh working root from the store's snapshots,
    // the sandbox, the diff written as a layer (empty here), the release.
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let mut blob = store.blob_writer().unwrap();
    let summary = write_dir(root.path(), &mut blob, Compression::None).unwrap();
    let digest = blob.commit(Some(summary.diff_id)).unwrap();
    let image_layers = [LayerBlob { digest, diff_id: summary.diff_id }];
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let snapshots = Snapshots::with_snapshotter(&store, snapshotter).unwrap();
        snapshots.unpack(&image_layers).unwrap();
        let r = bench(runs, || {
            let working = snapshots.prepare(&image_layers).unwrap();
            let root = RootFs::from(working.rootfs());
            sandbox_once(root, Network::None);
            working.diff(std::io::sink(), Compression::None, &[]).unwrap();
            working.release().unwrap();
        });
        rows.push((format!("prepare + sandbox + diff, {snapshotter:?} snapshotter").to_lowercase(), r));
    }

    let mut runc_median = None;
    if have_runc {
        let runc = runc_binary().unwrap();
        let mut n = 0;
        let r = bench(runs, || {
            n += 1;
            let id = format!("hoist-bench-{}-{n}", std::process::id());
            let status = Command::new(runc)
                .args(["run", "--bundle"])
                .arg(bundle.path())
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "runc run failed");
        });
        runc_median = Some(r.0);
        rows.push(("runc run (dir root, own netns)".into(), r));
    }
    let base = bench(runs, || {
        assert!(Command::new("/bin/true").status().unwrap().success());
    });
    rows.push(("plain fork+exec /bin/true (no sandbox)".into(), base));

    println!("\n{runs} runs each; start→exit of /bin/true");
    println!("{:<44} {:>10} {:>10} {:>10} {:>9}", "", "median", "p10", "p90", "vs runc");
    for (name, (med, p10, p90)) in &rows {
        let ratio =
            runc_median.map_or("-".to_string(), |r| format!("{:.1}x", r.as_secs_f64() / med.as_secs_f64()));
        let ms = |d: &Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        println!("{name:<44} {:>10} {:>10} {:>10} {ratio:>9}", ms(med), ms(p10), ms(p90));
    }
}
