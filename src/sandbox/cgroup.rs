//! Resource limits through a cgroup of the sandbox's own, on cgroup v2 or on the v1 hierarchies.
//!
//! - [`Layout::read`]: where each controller is mounted and which cgroup this
//!   process is in (`/proc/self/mountinfo`, `/proc/self/cgroup`), and, rootless,
//!   the cgroup v2 subtree delegated to this user (systemd's `Delegate=yes`),
//!   if any.
//! - [`plan`]: pure, from a layout and [`Limits`] to the directories to make,
//!   the control files to write and the `cgroup.procs` files the sandbox joins.
//!   A controller on v2 goes in `<v2>/hoist/<name>` (root) or
//!   `<delegated>/hoist/<name>` (rootless); one on v1 in `<own cgroup>/<name>`
//!   of its hierarchy, so that limits on hoist's own cgroup still bound it.
//!   No cgroup possible for a limit is an error naming it, never a no-op.
//! - [`Cgroups::create`], [`Cgroups::remove`]: applied for one run; the name is
//!   `hoist-<pid>-<n>`, so a sweep ([`Cgroups::create`] does one first)
//!   removes what a killed hoist left once its process is gone.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::spec::Limits;
use super::sys;

/// The controllers a limit needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }

    /// The limit's name as a user gives it, for errors.
    fn limit(self) -> &'static str {
        match self {
            Controller::Memory => "memory limit",
            Controller::Pids => "pids limit",
            Controller::Cpu => "cpus limit",
        }
    }
}

/// A cgroup v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V1Hierarchy {
    pub mount: PathBuf,
    /// The controllers it holds (`memory`, `cpu`, `cpuacct`…).
    pub controllers: Vec<String>,
    /// This process's cgroup in it, relative to the mount.
    pub own: PathBuf,
    /// Whether this process may make cgroups below its own there.
    pub writable: bool,
}

/// The cgroup v2 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V2Hierarchy {
    pub mount: PathBuf,
    /// Where hoist's cgroups go below, relative to the mount: the root
    /// (as root), or the subtree delegated to this user (rootless); `None`
    /// when rootless without a delegated subtree.
    pub base: Option<PathBuf>,
    /// The controllers `base` offers (its `cgroup.controllers`).
    pub controllers: Vec<String>,
}

/// Where the controllers are, as seen by this process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    pub v2: Option<V2Hierarchy>,
    pub v1: Vec<V1Hierarchy>,
    pub rootless: bool,
}

/// Why a limit cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupError {
    /// The limit that needed the cgroup (`memory limit`, …).
    pub limit: &'static str,
    pub reason: String,
}

/// What to do on the filesystem for one run's cgroups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CgroupPlan {
    /// Directories to make, parents first; one that exists is fine.
    pub dirs: Vec<PathBuf>,
    /// Control files to write, in order.
    pub writes: Vec<(PathBuf, String)>,
    /// The `cgroup.procs` files the sandbox joins, one per hierarchy.
    pub procs: Vec<PathBuf>,
    /// The run's own directories, removed after it.
    pub remove: Vec<PathBuf>,
    /// Where stale `hoist-<pid>-<n>` cgroups of dead processes are looked for.
    pub sweep: Vec<PathBuf>,
}

const V2_BASE: &str = "hoist";
const PERIOD_US: u64 = 100_000;

/// The controllers `limits` need, each once.
fn controllers(limits: &Limits) -> Vec<Controller> {
    let mut needed = Vec::new();
    if limits.memory.is_some() || limits.memory_swap.is_some() {
        needed.push(Controller::Memory);
    }
    if limits.pids.is_some() {
        needed.push(Controller::Pids);
    }
    if limits.cpus.is_some() {
        needed.push(Controller::Cpu);
    }
    needed
}

/// Where one controller's cgroup goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Placement {
    V2,
    V1(usize),
}

fn place(layout: &Layout, controller: Controller) -> Result<Placement, CgroupError> {
    let name = controller.name();
    let fail = |reason: String| Err(CgroupError { limit: controller.limit(), reason });
    if let Some(v2) = &layout.v2
        && v2.base.is_some()
        && v2.controllers.iter().any(|c| c == name)
    {
        return Ok(Placement::V2);
    }
    if let Some(i) = layout.v1.iter().position(|h| h.controllers.iter().any(|c| c == name)) {
        let hierarchy = &layout.v1[i];
        if !hierarchy.writable {
            return fail(format!(
                "the {name} controller is on cgroup v1 at {}, where this user may not make a cgroup \
                 below {} (cgroup v1 is not delegated to unprivileged users: run as root, or on cgroup v2 \
                 with a subtree systemd delegates)",
                hierarchy.mount.display(),
                Path::new("/").join(&hierarchy.own).display()
            ));
        }
        return Ok(Placement::V1(i));
    }
    match &layout.v2 {
        Some(v2) if v2.base.is_none() => fail(format!(
            "rootless, hoist needs a cgroup v2 subtree delegated to this user (systemd's user@UID.service \
             with Delegate=yes) to set a {}, and finds none writable above its own cgroup",
            controller.limit()
        )),
        Some(v2) => fail(format!(
            "the {name} controller is neither enabled on cgroup v2 at {} (it offers: {}) nor mounted as a v1 \
             hierarchy",
            v2.mount.join(v2.base.as_deref().unwrap_or(Path::new(""))).display(),
            if v2.controllers.is_empty() { "none".to_string() } else { v2.controllers.join(" ") }
        )),
        None => fail(format!("no cgroup hierarchy on this machine has the {name} controller")),
    }
}

/// The run's cgroups for `limits` on `layout`, named `name` (see the module
/// documentation for where they go).
pub(crate) fn plan(layout: &Layout, limits: &Limits, name: &str) -> Result<CgroupPlan, CgroupError> {
    let mut out = CgroupPlan::default();
    let needed = controllers(limits);
    let mut v2_controllers = Vec::new();
    let mut v1_used: Vec<(usize, Vec<Controller>)> = Vec::new();
    for controller in &needed {
        match place(layout, *controller)? {
            Placement::V2 => v2_controllers.push(*controller),
            Placement::V1(i) => match v1_used.iter_mut().find(|(j, _)| *j == i) {
                Some((_, list)) => list.push(*controller),
                None => v1_used.push((i, vec![*controller])),
            },
        }
    }
    if let (Some(v2), false) = (&layout.v2, v2_controllers.is_empty()) {
        let base = v2.mount.join(v2.base.as_deref().unwrap_or(Path::new("")));
        let parent = base.join(V2_BASE);
        let dir = parent.join(name);
        let enable: Vec<String> = v2_controllers.iter().map(|c| format!("+{}", c.name())).collect();
        out.dirs.push(parent.clone());
        out.writes.push((base.join("cgroup.subtree_control"), enable.join(" ")));
        out.writes.push((parent.join("cgroup.subtree_control"), enable.join(" ")));
        out.dirs.push(dir.clone());
        for controller in &v2_controllers {
            out.writes.extend(limit_writes_v2(&dir, *controller, limits));
        }
        out.procs.push(dir.join("cgroup.procs"));
        out.remove.push(dir);
        out.sweep.push(parent);
    }
    for (i, list) in v1_used {
        let hierarchy = &layout.v1[i];
        let parent = hierarchy.mount.join(&hierarchy.own);
        let dir = parent.join(name);
        out.dirs.push(dir.clone());
        for controller in list {
            out.writes.extend(limit_writes_v1(&dir, controller, limits));
        }
        out.procs.push(dir.join("cgroup.procs"));
        out.remove.push(dir);
        out.sweep.push(parent);
    }
    Ok(out)
}

/// Memory plus swap as Docker computes it: twice the memory unless given.
fn memory_and_swap(limits: &Limits) -> Option<i64> {
    match (limits.memory, limits.memory_swap) {
        (_, Some(total)) => Some(total),
        (Some(memory), None) => Some(memory as i64 * 2),
        (None, None) => None,
    }
}

fn limit_writes_v2(dir: &Path, controller: Controller, limits: &Limits) -> Vec<(PathBuf, String)> {
    let max = |value: i64| if value < 0 { "max".to_string() } else { value.to_string() };
    match controller {
        Controller::Memory => {
            let mut writes = Vec::new();
            if let Some(memory) = limits.memory {
                writes.push((dir.join("memory.max"), memory.to_string()));
            }
            if let Some(total) = memory_and_swap(limits) {
                // v2 limits swap alone.
                let swap = if total < 0 { -1 } else { total - limits.memory.unwrap_or(0) as i64 };
                writes.push((dir.join("memory.swap.max"), max(swap.max(-1))));
            }
            writes
        }
        Controller::Pids => {
            let pids = limits.pids.unwrap_or(-1);
            vec![(dir.join("pids.max"), max(if pids <= 0 { -1 } else { pids }))]
        }
        Controller::Cpu => {
            let quota = (limits.cpus.unwrap_or(0.0) * PERIOD_US as f64).round() as u64;
            vec![(dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))]
        }
    }
}

fn limit_writes_v1(dir: &Path, controller: Controller, limits: &Limits) -> Vec<(PathBuf, String)> {
    match controller {
        Controller::Memory => {
            let mut writes = Vec::new();
            if let Some(memory) = limits.memory {
                writes.push((dir.join("memory.limit_in_bytes"), memory.to_string()));
            }
            if let Some(total) = memory_and_swap(limits) {
                writes.push((dir.join("memory.memsw.limit_in_bytes"), total.to_string()));
            }
            writes
        }
        Controller::Pids => {
            let pids = limits.pids.unwrap_or(-1);
            vec![(dir.join("pids.max"), if pids <= 0 { "max".into() } else { pids.to_string() })]
        }
        Controller::Cpu => {
            let quota = (limits.cpus.unwrap_or(0.0) * PERIOD_US as f64).round() as u64;
            vec![
                (dir.join("cpu.cfs_period_us"), PERIOD_US.to_string()),
                (dir.join("cpu.cfs_quota_us"), quota.to_string()),
            ]
        }
    }
}

impl Layout {
    /// This process's view of the cgroup hierarchies.
    pub(crate) fn read() -> Layout {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let rootless = crate::idmap::rootless();
        let mut layout = Layout { v2: None, v1: Vec::new(), rootless };
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else { continue };
            let fields: Vec<&str> = before.split(' ').collect();
            let tail: Vec<&str> = after.split(' ').collect();
            let (Some(root), Some(mount), Some(fstype), Some(options)) =
                (fields.get(3), fields.get(4), tail.first(), tail.get(2))
            else {
                continue;
            };
            let mount = PathBuf::from(unescape(mount));
            match *fstype {
                "cgroup2" if layout.v2.is_none() => {
                    let own = own_cgroup(&membership, None).map(|p| relative_to(&p, root));
                    layout.v2 = Some(v2_hierarchy(mount, own.unwrap_or_default(), rootless));
                }
                "cgroup" => {
                    let controllers: Vec<String> = options
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("name=") && !o.contains('='))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    let Some(own) = own_cgroup(&membership, Some(&controllers)) else { continue };
                    let own = relative_to(&own, root);
                    let writable = !rootless || sys::writable(&mount.join(&own).join("cgroup.procs"));
                    layout.v1.push(V1Hierarchy { mount, controllers, own, writable });
                }
                _ => {}
            }
        }
        layout
    }
}

/// The v2 hierarchy at `mount`: as root, hoist's cgroups go below the root;
/// rootless, below the highest cgroup above (or at) its own that belongs to
/// this user, as systemd delegates `user@UID.service`.
fn v2_hierarchy(mount: PathBuf, own: PathBuf, rootless: bool) -> V2Hierarchy {
    let base = if !rootless {
        Some(PathBuf::new())
    } else {
        let mut found = None;
        let mut path = PathBuf::new();
        for component in own.components() {
            path.push(component);
            let dir = mount.join(&path);
            if sys::owned_by_me(&dir) && sys::writable(&dir.join("cgroup.subtree_control")) {
                found = Some(path.clone());
                break;
            }
        }
        found
    };
    let controllers = base
        .as_ref()
        .and_then(|b| std::fs::read_to_string(mount.join(b).join("cgroup.controllers")).ok())
        .map(|text| text.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    V2Hierarchy { mount, base, controllers }
}

/// The cgroup of this process in the v1 hierarchy holding `controllers`, or
/// the v2 one (`None`), from `/proc/self/cgroup`.
fn own_cgroup(membership: &str, controllers: Option<&[String]>) -> Option<PathBuf> {
    membership.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, list, path) = (fields.next()?, fields.next()?, fields.next()?);
        let matches = match controllers {
            None => list.is_empty(),
            Some(wanted) => {
                let listed: Vec<&str> = list.split(',').collect();
                wanted.iter().all(|c| listed.contains(&c.as_str()))
            }
        };
        matches.then(|| PathBuf::from(path.trim_start_matches('/')))
    })
}

/// `path` relative to a mount whose root (in a cgroup namespace, or a bind
/// of a subtree) is `root`.
fn relative_to(path: &Path, root: &str) -> PathBuf {
    let root = Path::new(root.trim_start_matches('/'));
    path.strip_prefix(root).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Ok(value) = u8::from_str_radix(&text[i + 1..i + 4], 8)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// One run's cgroups, made by [`Cgroups::create`].
#[derive(Debug, Default)]
pub(crate) struct Cgroups {
    plan: CgroupPlan,
}

impl Cgroups {
    /// Sweeps stale cgroups, then makes and configures this run's; `None`
    /// when `limits` need none.
    pub(crate) fn create(limits: &Limits) -> Result<Option<Cgroups>, CgroupError> {
        if !limits.any() {
            return Ok(None);
        }
        let name = format!("hoist-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let plan = plan(&Layout::read(), limits, &name)?;
        for parent in &plan.sweep {
            sweep(parent);
        }
        let cgroups = Cgroups { plan };
        let limit = controllers(limits).first().map_or("limit", |c| c.limit());
        let failure = |what: &Path, e: io::Error| CgroupError {
            limit,
            reason: format!("cannot set up the cgroup: {}: {e}", what.display()),
        };
        for dir in &cgroups.plan.dirs {
            match std::fs::create_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(failure(dir, e)),
                _ => {}
            }
        }
        for (file, value) in &cgroups.plan.writes {
            if let Err(e) = sys::write_control_file(file, value) {
                // Swap accounting may be off (no memsw file): the memory
                // limit alone still holds.
                if e.kind() == io::ErrorKind::NotFound && file.ends_with("memory.memsw.limit_in_bytes") {
                    continue;
                }
                return Err(failure(file, e));
            }
        }
        Ok(Some(cgroups))
    }

    /// The `cgroup.procs` files the sandbox's first process joins.
    pub(crate) fn procs(&self) -> &[PathBuf] {
        &self.plan.procs
    }

    /// Removes the run's cgroups once every process in them is gone (they
    /// may take a moment to leave after the namespace died).
    pub(crate) fn remove(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        for dir in &self.plan.remove {
            loop {
                match sys::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc_ebusy()) && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    _ => break,
                }
            }
        }
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        self.remove();
    }
}

fn libc_ebusy() -> i32 {
    sys::Errno::BUSY.raw_os_error()
}

/// Removes `hoist-<pid>-<n>` cgroups below `parent` whose process is gone
/// (an rmdir fails while any process is still in one).
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) =
            name.to_str().and_then(|n| n.strip_prefix("hoist-")).and_then(|n| n.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok_and(|p| p != std::process::id() && !Path::new("/proc").join(pid).exists())
        {
            let _ = sys::remove_dir(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// This development machine: v1 hierarchies per controller, a v2 one
    /// with none of them.
    fn hybrid() -> Layout {
        let v1 = |name: &str| V1Hierarchy {
            mount: PathBuf::from("/sys/fs/cgroup").join(name),
            controllers: strings(&[name]),
            own: "ci/job".into(),
            writable: true,
        };
        Layout {
            v2: Some(V2Hierarchy {
                mount: "/sys/fs/cgroup/unified".into(),
                base: Some(PathBuf::new()),
                controllers: strings(&["hugetlb"]),
            }),
            v1: vec![v1("cpu"), v1("memory"), v1("pids")],
            rootless: false,
        }
    }

    fn unified(base: Option<&str>, rootless: bool) -> Layout {
        Layout {
            v2: Some(V2Hierarchy {
                mount: "/sys/fs/cgroup".into(),
                base: base.map(PathBuf::from),
                controllers: strings(&["cpu", "memory", "pids", "io"]),
            }),
            v1: Vec::new(),
            rootless,
        }
    }

    fn limits() -> Limits {
        Limits { memory: Some(64 << 20), memory_swap: None, cpus: Some(0.5), pids: Some(20) }
    }

    fn writes(plan: &CgroupPlan) -> Vec<(String, String)> {
        plan.writes.iter().map(|(p, v)| (p.display().to_string(), v.clone())).collect()
    }

    fn pair(path: &str, value: &str) -> (String, String) {
        (path.to_string(), value.to_string())
    }

    #[test]
    fn on_v1_each_controller_gets_a_cgroup_below_the_processs_own_in_its_hierarchy() {
        let plan = plan(&hybrid(), &limits(), "hoist-1-0").unwrap();
        let procs: Vec<String> = plan.procs.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            procs,
            [
                "/sys/fs/cgroup/memory/ci/job/hoist-1-0/cgroup.procs",
                "/sys/fs/cgroup/pids/ci/job/hoist-1-0/cgroup.procs",
                "/sys/fs/cgroup/cpu/ci/job/hoist-1-0/cgroup.procs",
            ]
        );
        assert_eq!(
            writes(&plan),
            [
                pair("/sys/fs/cgroup/memory/ci/job/hoist-1-0/memory.limit_in_bytes", "67108864"),
                pair("/sys/fs/cgroup/memory/ci/job/hoist-1-0/memory.memsw.limit_in_bytes", "134217728"),
                pair("/sys/fs/cgroup/pids/ci/job/hoist-1-0/pids.max", "20"),
                pair("/sys/fs/cgroup/cpu/ci/job/hoist-1-0/cpu.cfs_period_us", "100000"),
                pair("/sys/fs/cgroup/cpu/ci/job/hoist-1-0/cpu.cfs_quota_us", "50000"),
            ]
        );
        assert_eq!(plan.remove.len(), 3);
        assert_eq!(plan.sweep[0], Path::new("/sys/fs/cgroup/memory/ci/job"));
    }

    #[test]
    fn on_v2_as_root_the_cgroup_goes_below_hoist_at_the_root_with_its_controllers_enabled() {
        let plan = plan(&unified(Some(""), false), &limits(), "hoist-1-0").unwrap();
        assert_eq!(
            plan.dirs,
            [PathBuf::from("/sys/fs/cgroup/hoist"), "/sys/fs/cgroup/hoist/hoist-1-0".into()]
        );
        assert_eq!(
            writes(&plan),
            [
                pair("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids +cpu"),
                pair("/sys/fs/cgroup/hoist/cgroup.subtree_control", "+memory +pids +cpu"),
                pair("/sys/fs/cgroup/hoist/hoist-1-0/memory.max", "67108864"),
                pair("/sys/fs/cgroup/hoist/hoist-1-0/memory.swap.max", "67108864"),
                pair("/sys/fs/cgroup/hoist/hoist-1-0/pids.max", "20"),
                pair("/sys/fs/cgroup/hoist/hoist-1-0/cpu.max", "50000 100000"),
            ]
        );
        assert_eq!(plan.procs, [PathBuf::from("/sys/fs/cgroup/hoist/hoist-1-0/cgroup.procs")]);
    }

    #[test]
    fn rootless_on_v2_the_cgroup_goes_below_the_delegated_subtree() {
        let layout = unified(Some("user.slice/user-1000.slice/user@1000.service"), true);
        let only_pids = Limits { pids: Some(5), ..Limits::default() };
        let plan = plan(&layout, &only_pids, "hoist-7-1").unwrap();
        let base = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
        assert_eq!(
            writes(&plan),
            [
                pair(&format!("{base}/cgroup.subtree_control"), "+pids"),
                pair(&format!("{base}/hoist/cgroup.subtree_control"), "+pids"),
                pair(&format!("{base}/hoist/hoist-7-1/pids.max"), "5"),
            ]
        );
    }

    #[test]
    fn rootless_without_a_delegated_subtree_a_limit_is_an_error_naming_it() {
        let error = plan(&unified(None, true), &Limits { memory: Some(1 << 20), ..Limits::default() }, "h")
            .unwrap_err();
        assert_eq!(error.limit, "memory limit");
        assert!(error.reason.contains("delegated"), "{}", error.reason);
    }

    #[test]
    fn rootless_on_v1_a_limit_is_an_error_naming_the_hierarchy() {
        let mut layout = hybrid();
        for hierarchy in &mut layout.v1 {
            hierarchy.writable = false;
        }
        layout.rootless = true;
        let error = plan(&layout, &Limits { pids: Some(3), ..Limits::default() }, "h").unwrap_err();
        assert_eq!(error.limit, "pids limit");
        assert!(
            error.reason.contains("/sys/fs/cgroup/pids") && error.reason.contains("v1"),
            "{}",
            error.reason
        );
    }

    #[test]
    fn a_controller_nowhere_is_an_error() {
        let layout = Layout { v2: None, v1: Vec::new(), rootless: false };
        let error = plan(&layout, &Limits { cpus: Some(1.0), ..Limits::default() }, "h").unwrap_err();
        assert_eq!(error.limit, "cpus limit");
        assert!(error.reason.contains("cpu controller"), "{}", error.reason);
    }

    #[test]
    fn no_limit_needs_no_cgroup() {
        assert_eq!(plan(&hybrid(), &Limits::default(), "h").unwrap(), CgroupPlan::default());
    }

    #[test]
    fn an_explicit_swap_total_and_unlimited_values_are_written_as_each_version_spells_them() {
        let limits = Limits { memory: Some(100), memory_swap: Some(-1), cpus: None, pids: Some(-1) };
        let v2 = writes(&plan(&unified(Some(""), false), &limits, "h").unwrap());
        assert!(v2.contains(&pair("/sys/fs/cgroup/hoist/h/memory.swap.max", "max")), "{v2:?}");
        assert!(v2.contains(&pair("/sys/fs/cgroup/hoist/h/pids.max", "max")), "{v2:?}");
        let v1 = writes(&plan(&hybrid(), &limits, "h").unwrap());
        assert!(
            v1.contains(&pair("/sys/fs/cgroup/memory/ci/job/h/memory.memsw.limit_in_bytes", "-1")),
            "{v1:?}"
        );
        assert!(v1.contains(&pair("/sys/fs/cgroup/pids/ci/job/h/pids.max", "max")), "{v1:?}");
    }

    #[test]
    fn the_processs_cgroups_are_read_from_proc_self_cgroup() {
        let membership = "4:memory:/process_api/abc\n8:pids:/\n0::/user.slice/x.scope\n";
        assert_eq!(own_cgroup(membership, Some(&strings(&["memory"]))), Some("process_api/abc".into()));
        assert_eq!(own_cgroup(membership, Some(&strings(&["pids"]))), Some("".into()));
        assert_eq!(own_cgroup(membership, None), Some("user.slice/x.scope".into()));
        assert_eq!(relative_to(Path::new("a/b/c"), "/a"), Path::new("b/c"));
        assert_eq!(unescape("/sys/fs/cgroup\\040x"), "/sys/fs/cgroup x");
    }
}
