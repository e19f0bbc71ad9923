//! The mount plan: a [`RootPlan`] turned into the ordered steps that build the root, as data.
//!
//! - A pure function of the plan ([`mount_steps`]): it reads no file and makes
//!   no call, so its tests need neither root nor namespaces.
//! - What depends on the image or the kernel is in the steps, not decided
//!   here: mount points made only where missing ([`MountStep::MountPoint`]),
//!   `/proc` paths masked only where present ([`MountStep::When`]), a fresh
//!   sysfs else a bind of the host's ([`MountStep::FirstOf`]), the overlay
//!   with `lowerdir+` else with `mount(2)` ([`OverlayMount`]).
//! - Before the pivot only the staging tmpfs, the root and its `/dev` are
//!   mounted, all below the staging directory, after the mounts went private.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::RootPlan;
use crate::paths;
use crate::sandbox::spec::{Mount, MountKind, RootFs};
use crate::sandbox::sys::MountFlags;

/// Where the old root stays reachable between pivot_root and its detach;
/// inside the sandbox's private /dev tmpfs, so it never touches the image.
pub(crate) const OLD_ROOT: &str = "/dev/.hoist-oldroot";

/// The device nodes bound from the host into the fresh /dev.
pub(crate) const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The `/etc` files every sandbox gets, bound over the image's.
const ETC_FILES: [&str; 3] = ["hosts", "resolv.conf", "hostname"];

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV).union(MountFlags::NOEXEC);

/// Overlay options the snapshot diff relies on (`userxattr` refuses
/// `redirect_dir=off`, hence `nofollow`): every copy-up must be a whole file
/// in the upper dir, with no redirects or index entries, whatever the
/// kernel's defaults are.
const OVERLAY_OPTIONS: [(&str, &str); 3] =
    [("redirect_dir", "nofollow"), ("metacopy", "off"), ("index", "off")];

/// What a missing mount point is made as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MountPointKind {
    Dir,
    /// An empty file, to bind a file onto.
    File,
    /// A file if this (host) source is not a directory, else a directory.
    LikeSource(PathBuf),
}

/// What decides whether [`MountStep::When`] applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Something is at the path (symlinks followed).
    Exists(PathBuf),
    /// A directory is at the path (symlinks followed).
    IsDir(PathBuf),
    /// An empty directory is at the path (symlinks followed).
    IsEmptyDir(PathBuf),
}

/// The overlay root, in both forms a kernel may accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OverlayMount {
    pub target: PathBuf,
    /// For the new mount API: one `lowerdir+` per layer, top first, so the
    /// layer count is not limited by the option string; a kernel that
    /// refuses the first one (before 6.8) gets the classic form.
    pub parameters: Vec<(String, Option<String>)>,
    /// For `mount(2)`: the option string, with paths relative to
    /// `classic_dir` (their common parent, to be the working directory) to
    /// keep it under the page size.
    pub classic_dir: PathBuf,
    pub classic_options: String,
    pub layers: usize,
}

/// One step of building the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MountStep {
    /// Makes every mount private, so nothing from here on reaches the host.
    MakeMountsPrivate,
    /// Mounts a new filesystem of type `fstype`.
    Mount {
        fstype: &'static str,
        target: PathBuf,
        flags: MountFlags,
        data: String,
    },
    Bind {
        source: PathBuf,
        target: PathBuf,
        recursive: bool,
    },
    /// Remounts a bind read-only, keeping the flags the kernel locks.
    RemountReadonly {
        target: PathBuf,
    },
    Overlay(OverlayMount),
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    /// Creates an empty file, which must not exist.
    CreateFile {
        path: PathBuf,
        mode: u32,
    },
    WriteFile {
        path: PathBuf,
        content: Vec<u8>,
    },
    /// Gives a file an owner and a mode (no symlink followed).
    SetOwner {
        path: PathBuf,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    RemoveFile {
        path: PathBuf,
    },
    RemoveDir {
        path: PathBuf,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    /// Copies what directory `from` holds into directory `to`, owners,
    /// modes and times kept, and gives `to` the owner and mode of `from`.
    CopyTree {
        from: PathBuf,
        to: PathBuf,
    },
    /// Fails when something other than a directory is at `path` (no
    /// symlink followed); `what` names it in the error.
    RequireDirectory {
        path: PathBuf,
        what: &'static str,
    },
    /// Makes `root/rel` exist to mount on, creating and reporting each
    /// missing component.
    MountPoint {
        root: PathBuf,
        rel: PathBuf,
        kind: MountPointKind,
    },
    Chdir {
        path: PathBuf,
    },
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
    },
    /// Detaches the mount at `target`.
    Detach {
        target: PathBuf,
    },
    /// The steps, only if the condition holds.
    When {
        condition: Condition,
        steps: Vec<MountStep>,
    },
    /// The first sequence of steps that succeeds; the last one's error if
    /// none does.
    FirstOf(Vec<Vec<MountStep>>),
}

/// The steps that build `plan`'s root at `plan.staging/root`, pivot into
/// it and set up `/dev`, `/proc`, `/sys`, the extra binds and the `/etc`
/// files; afterwards `/` is the sandbox root and the old root is gone.
pub(crate) fn mount_steps(plan: &RootPlan) -> Vec<MountStep> {
    let mut steps = before_pivot(plan);
    steps.extend(dev(plan.userns));
    steps.extend(proc());
    steps.extend(sys(plan.netns));
    steps.extend(extra_binds(plan));
    steps.extend(container_mounts(&plan.container_mounts, plan.userns));
    steps.extend(etc_files(plan));
    let old = PathBuf::from(OLD_ROOT);
    steps.push(MountStep::Detach { target: old.clone() });
    steps.push(MountStep::RemoveDir { path: old });
    steps
}

/// The staging tmpfs, the root on it and its `/dev`, which holds the old
/// root after the pivot while the image's own paths are set up with
/// symlinks resolving inside the image.
fn before_pivot(plan: &RootPlan) -> Vec<MountStep> {
    let new_root = plan.staging.join("root");
    let dev = new_root.join("dev");
    let root = match &plan.root {
        RootFs::Dir(dir) => {
            MountStep::Bind { source: dir.clone(), target: new_root.clone(), recursive: true }
        }
        RootFs::Overlay { lower, upper, work } => {
            MountStep::Overlay(overlay_mount(lower, upper, work, &new_root, plan.userns))
        }
    };
    vec![
        MountStep::MakeMountsPrivate,
        tmpfs(&plan.staging, MountFlags::NOSUID | MountFlags::NODEV, "mode=0700,size=64k"),
        MountStep::Mkdir { path: new_root.clone(), mode: 0o777 },
        root,
        MountStep::RequireDirectory { path: dev.clone(), what: "/dev" },
        MountStep::MountPoint { root: new_root.clone(), rel: "dev".into(), kind: MountPointKind::Dir },
        tmpfs(&dev, MountFlags::NOSUID, "mode=0755,size=64k"),
        MountStep::Mkdir { path: dev.join(".hoist-oldroot"), mode: 0o700 },
        MountStep::Chdir { path: new_root },
        MountStep::PivotRoot { new_root: ".".into(), put_old: "dev/.hoist-oldroot".into() },
        MountStep::Chdir { path: "/".into() },
    ]
}

/// The devices, bound from the host's (never made: mknod is refused in a
/// user namespace, and a bind needs no privilege the host lacks), a fresh
/// devpts, a shm tmpfs and the usual links.
fn dev(userns: bool) -> Vec<MountStep> {
    let dev = Path::new("/dev");
    let mut steps = Vec::new();
    for name in DEVICES {
        let target = dev.join(name);
        steps.push(MountStep::CreateFile { path: target.clone(), mode: 0o666 });
        steps.push(MountStep::Bind {
            source: Path::new(OLD_ROOT).join("dev").join(name),
            target,
            recursive: false,
        });
    }
    // gid 5 (tty) is not mapped in a rootless namespace.
    let pts_options = if userns {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    steps.extend([
        MountStep::Mkdir { path: dev.join("pts"), mode: 0o777 },
        MountStep::Mount {
            fstype: "devpts",
            target: dev.join("pts"),
            flags: MountFlags::NOSUID | MountFlags::NOEXEC,
            data: pts_options.into(),
        },
        MountStep::Mkdir { path: dev.join("shm"), mode: 0o777 },
        tmpfs(&dev.join("shm"), NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k"),
    ]);
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        steps.push(MountStep::Symlink { target: target.into(), link: dev.join(link) });
    }
    steps
}

/// A fresh procfs with Docker's read-only and masked paths.
fn proc() -> Vec<MountStep> {
    let proc = Path::new("/proc");
    let mut steps = vec![
        MountStep::MountPoint { root: "/".into(), rel: "proc".into(), kind: MountPointKind::Dir },
        MountStep::Mount {
            fstype: "proc",
            target: proc.into(),
            flags: NOSUID_NODEV_NOEXEC,
            data: String::new(),
        },
    ];
    for readonly in ["bus", "fs", "irq", "sys", "sysrq-trigger"] {
        let path = proc.join(readonly);
        steps.push(MountStep::When {
            condition: Condition::Exists(path.clone()),
            steps: vec![
                MountStep::Bind { source: path.clone(), target: path.clone(), recursive: true },
                MountStep::RemountReadonly { target: path },
            ],
        });
    }
    for masked in ["kcore", "keys", "timer_list", "sched_debug", "latency_stats", "timer_stats"] {
        let path = proc.join(masked);
        steps.push(MountStep::When {
            condition: Condition::Exists(path.clone()),
            steps: vec![MountStep::Bind { source: "/dev/null".into(), target: path, recursive: false }],
        });
    }
    for masked in ["acpi", "scsi"] {
        let path = proc.join(masked);
        steps.push(MountStep::When {
            condition: Condition::IsDir(path.clone()),
            steps: vec![tmpfs(&path, NOSUID_NODEV_NOEXEC | MountFlags::RDONLY, "size=0")],
        });
    }
    steps
}

/// A read-only `/sys`. A fresh sysfs shows the sandbox's own network
/// namespace; it is refused without a netns of our own, and in some
/// rootless setups, where the host's is bound instead. In a user namespace
/// the host's /sys has locked submounts (cgroup, securityfs…): only a
/// recursive bind may take it then.
fn sys(netns: bool) -> Vec<MountStep> {
    let target = PathBuf::from("/sys");
    let host = Path::new(OLD_ROOT).join("sys");
    let bind = |recursive| vec![MountStep::Bind { source: host.clone(), target: target.clone(), recursive }];
    let bound = vec![
        MountStep::FirstOf(vec![bind(false), bind(true)]),
        MountStep::RemountReadonly { target: target.clone() },
    ];
    let mounted = if netns {
        let fresh = MountStep::Mount {
            fstype: "sysfs",
            target: target.clone(),
            flags: NOSUID_NODEV_NOEXEC | MountFlags::RDONLY,
            data: String::new(),
        };
        vec![MountStep::FirstOf(vec![vec![fresh], bound])]
    } else {
        bound
    };
    let point = MountStep::MountPoint { root: "/".into(), rel: "sys".into(), kind: MountPointKind::Dir };
    std::iter::once(point).chain(mounted).collect()
}

/// The spec's extra bind mounts, from the host (through the old root).
fn extra_binds(plan: &RootPlan) -> Vec<MountStep> {
    let mut steps = Vec::new();
    for mount in &plan.mounts {
        let source = Path::new(OLD_ROOT).join(mount.source.strip_prefix("/").unwrap_or(&mount.source));
        // Validated: absolute, without `..`.
        let rel =
            PathBuf::from(OsStr::from_bytes(&paths::descending(mount.target.as_bytes()).unwrap_or_default()));
        let target = Path::new("/").join(&rel);
        steps.push(MountStep::MountPoint {
            root: "/".into(),
            rel,
            kind: MountPointKind::LikeSource(source.clone()),
        });
        steps.push(MountStep::Bind { source, target: target.clone(), recursive: true });
        if mount.readonly {
            steps.push(MountStep::RemountReadonly { target });
        }
    }
    steps
}

/// The steps once the process's working directory is made in the root: a
/// read-only root is remounted so last.
pub(crate) fn finishing_steps(plan: &RootPlan) -> Vec<MountStep> {
    if plan.readonly_root { vec![MountStep::RemountReadonly { target: "/".into() }] } else { Vec::new() }
}

/// Where a host path is reached from inside, between the pivot and the
/// detach of the old root.
fn through_old_root(host: &Path) -> PathBuf {
    Path::new(OLD_ROOT).join(host.strip_prefix("/").unwrap_or(host))
}

/// `hoist run`'s mounts, shallowest target first (a stable sort, as Docker
/// sorts mounts), each on a mount point made where missing.
pub(super) fn container_mounts(mounts: &[Mount], userns: bool) -> Vec<MountStep> {
    let mut ordered: Vec<(PathBuf, &Mount)> = mounts
        .iter()
        .map(|m| {
            // Validated: absolute, without `..`.
            let rel = paths::descending(m.target.as_bytes()).unwrap_or_default();
            (PathBuf::from(OsStr::from_bytes(&rel)), m)
        })
        .collect();
    ordered.sort_by_key(|(rel, _)| rel.components().count());
    let mut steps = Vec::new();
    // In-memory files are written into a tmpfs of their own, which leaves
    // once the binds hold them.
    let files: Vec<usize> = mounts
        .iter()
        .filter_map(
            |m| if let MountKind::File { content, .. } = &m.kind { Some(content.0.len()) } else { None },
        )
        .collect();
    let files_dir = PathBuf::from(FILES_DIR);
    if !files.is_empty() {
        let size = files.iter().map(|len| len.div_ceil(4096) * 4096 + 4096).sum::<usize>();
        steps.push(MountStep::Mkdir { path: files_dir.clone(), mode: 0o700 });
        steps.push(tmpfs(&files_dir, NOSUID_NODEV_NOEXEC, &format!("mode=0700,size={size}")));
    }
    for (n, (rel, mount)) in ordered.into_iter().enumerate() {
        let target = Path::new("/").join(&rel);
        let point = |kind| MountStep::MountPoint { root: "/".into(), rel: rel.clone(), kind };
        match &mount.kind {
            MountKind::Bind { source } => {
                let source = through_old_root(source);
                steps.push(point(MountPointKind::LikeSource(source.clone())));
                steps.push(MountStep::Bind { source, target: target.clone(), recursive: true });
            }
            MountKind::Volume { source, copy_up } => {
                let source = through_old_root(source);
                if *copy_up {
                    steps.push(MountStep::When {
                        condition: Condition::IsDir(target.clone()),
                        steps: vec![MountStep::When {
                            condition: Condition::IsEmptyDir(source.clone()),
                            steps: vec![MountStep::CopyTree { from: target.clone(), to: source.clone() }],
                        }],
                    });
                }
                steps.push(point(MountPointKind::Dir));
                steps.push(MountStep::Bind { source, target: target.clone(), recursive: true });
            }
            MountKind::Overlay { lower, upper, work } => {
                let lower: Vec<PathBuf> = lower.iter().map(|l| through_old_root(l)).collect();
                steps.push(point(MountPointKind::Dir));
                steps.push(MountStep::Overlay(overlay_mount(
                    &lower,
                    &through_old_root(upper),
                    &through_old_root(work),
                    &target,
                    userns,
                )));
                // The classic mount works from the layers' parent.
                steps.push(MountStep::Chdir { path: "/".into() });
            }
            MountKind::File { content, uid, gid, mode } => {
                let source = files_dir.join(n.to_string());
                steps.push(MountStep::WriteFile { path: source.clone(), content: content.0.clone() });
                steps.push(MountStep::SetOwner { path: source.clone(), uid: *uid, gid: *gid, mode: *mode });
                steps.push(point(MountPointKind::File));
                steps.push(MountStep::Bind { source, target: target.clone(), recursive: false });
            }
            MountKind::Tmpfs { data, exec, suid, dev } => {
                let mut flags = MountFlags::empty();
                for (allowed, flag) in
                    [(exec, MountFlags::NOEXEC), (suid, MountFlags::NOSUID), (dev, MountFlags::NODEV)]
                {
                    if !allowed {
                        flags |= flag;
                    }
                }
                if mount.readonly {
                    flags |= MountFlags::RDONLY;
                }
                steps.push(point(MountPointKind::Dir));
                steps.push(tmpfs(&target, flags, data));
                continue;
            }
        }
        if mount.readonly {
            steps.push(MountStep::RemountReadonly { target });
        }
    }
    if !files.is_empty() {
        steps.push(MountStep::Detach { target: files_dir.clone() });
        steps.push(MountStep::RemoveDir { path: files_dir });
    }
    steps
}

/// Where in-memory files are written before they are bound: in the
/// sandbox's private `/dev`, on a tmpfs of their own.
const FILES_DIR: &str = "/dev/.hoist-files";

/// `/etc/hosts`, `resolv.conf` and `hostname`, bound from files written in
/// the private `/dev` tmpfs, which they leave once the bind holds them: they
/// never land in the image.
fn etc_files(plan: &RootPlan) -> Vec<MountStep> {
    let mut steps = Vec::new();
    for (name, content) in ETC_FILES.into_iter().zip([&plan.hosts, &plan.resolv_conf, &plan.hostname]) {
        let source = PathBuf::from(format!("/dev/.hoist-{name}"));
        let rel = Path::new("etc").join(name);
        steps.extend([
            MountStep::WriteFile { path: source.clone(), content: content.clone().into_bytes() },
            MountStep::MountPoint { root: "/".into(), rel: rel.clone(), kind: MountPointKind::File },
            MountStep::Bind { source: source.clone(), target: Path::new("/").join(rel), recursive: false },
            MountStep::RemoveFile { path: source },
        ]);
    }
    steps
}

fn tmpfs(target: &Path, flags: MountFlags, data: &str) -> MountStep {
    MountStep::Mount { fstype: "tmpfs", target: target.into(), flags, data: data.into() }
}

/// The overlay of `lower` (top first) with `upper` and `work` on `target`.
pub(crate) fn overlay_mount(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    userns: bool,
) -> OverlayMount {
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let mut parameters: Vec<(String, Option<String>)> =
        lower.iter().map(|l| ("lowerdir+".to_string(), Some(text(l)))).collect();
    parameters.push(("upperdir".into(), Some(text(upper))));
    parameters.push(("workdir".into(), Some(text(work))));
    parameters.extend(OVERLAY_OPTIONS.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))));
    if userns {
        parameters.push(("userxattr".into(), None));
    }

    let all: Vec<&Path> = lower.iter().map(PathBuf::as_path).chain([upper, work]).collect();
    let mut common = all[0].parent().unwrap_or(Path::new("/")).to_path_buf();
    while !all.iter().all(|p| p.starts_with(&common)) {
        if !common.pop() {
            break;
        }
    }
    let relative = |p: &Path| -> String {
        let r = p.strip_prefix(&common).unwrap_or(p).to_string_lossy().into_owned();
        r.replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,")
    };
    let lowers: Vec<String> = lower.iter().map(|l| relative(l)).collect();
    let mut options =
        format!("lowerdir={},upperdir={},workdir={}", lowers.join(":"), relative(upper), relative(work));
    for (key, value) in OVERLAY_OPTIONS {
        options.push_str(&format!(",{key}={value}"));
    }
    if userns {
        options.push_str(",userxattr");
    }
    OverlayMount {
        target: target.into(),
        parameters,
        classic_dir: common,
        classic_options: options,
        layers: lower.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::spec::BindMount;

    fn plan(root: RootFs) -> RootPlan {
        RootPlan {
            root,
            staging: "/mnt".into(),
            mounts: Vec::new(),
            container_mounts: Vec::new(),
            readonly_root: false,
            hosts: "127.0.0.1\tlocalhost\n".into(),
            resolv_conf: "# none\n".into(),
            hostname: "hoist\n".into(),
            userns: false,
            netns: true,
        }
    }

    fn dir_plan() -> RootPlan {
        plan(RootFs::Dir("/images/app".into()))
    }

    fn overlay_plan() -> RootPlan {
        plan(RootFs::Overlay {
            lower: vec!["/s/sha256/top".into(), "/s/sha256/mid".into(), "/s/sha256/base".into()],
            upper: "/s/work/1/upper".into(),
            work: "/s/work/1/work".into(),
        })
    }

    /// Every step, with the steps inside `When` and `FirstOf` in order.
    fn flatten(steps: &[MountStep]) -> Vec<&MountStep> {
        let mut out = Vec::new();
        for step in steps {
            out.push(step);
            match step {
                MountStep::When { steps, .. } => out.extend(flatten(steps)),
                MountStep::FirstOf(alternatives) => {
                    for alternative in alternatives {
                        out.extend(flatten(alternative));
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn position(steps: &[MountStep], wanted: impl Fn(&MountStep) -> bool) -> usize {
        steps.iter().position(wanted).expect("the plan has the step")
    }

    fn pivot(steps: &[MountStep]) -> usize {
        position(steps, |s| matches!(s, MountStep::PivotRoot { .. }))
    }

    /// The target of a step that mounts something.
    fn mount_target(step: &MountStep) -> Option<&Path> {
        match step {
            MountStep::Mount { target, .. } | MountStep::Bind { target, .. } => Some(target),
            MountStep::Overlay(overlay) => Some(&overlay.target),
            _ => None,
        }
    }

    #[test]
    fn an_overlay_root_is_mounted_with_its_lower_layers_top_first() {
        let steps = mount_steps(&overlay_plan());
        let MountStep::Overlay(overlay) = &steps[3] else { panic!("no overlay root: {:?}", steps[3]) };
        let lowers: Vec<&str> = overlay
            .parameters
            .iter()
            .filter(|(k, _)| k == "lowerdir+")
            .filter_map(|(_, v)| v.as_deref())
            .collect();
        assert_eq!(lowers, ["/s/sha256/top", "/s/sha256/mid", "/s/sha256/base"]);
        assert_eq!(overlay.parameters[0].0, "lowerdir+", "the first parameter tells an old kernel");
        assert_eq!(overlay.target, Path::new("/mnt/root"));
    }

    #[test]
    fn the_classic_overlay_options_are_relative_to_the_layers_common_parent() {
        let steps = mount_steps(&overlay_plan());
        let MountStep::Overlay(overlay) = &steps[3] else { panic!("no overlay root") };
        assert_eq!(overlay.classic_dir, Path::new("/s"));
        assert_eq!(
            overlay.classic_options,
            "lowerdir=sha256/top:sha256/mid:sha256/base,upperdir=work/1/upper,workdir=work/1/work,\
             redirect_dir=nofollow,metacopy=off,index=off"
        );
    }

    #[test]
    fn classic_overlay_options_escape_the_separators() {
        let overlay = overlay_mount(
            &["/l/a:b,c".into()],
            Path::new("/l/up"),
            Path::new("/l/wk"),
            Path::new("/t"),
            false,
        );
        assert!(
            overlay.classic_options.starts_with("lowerdir=a\\:b\\,c,upperdir=up,"),
            "{}",
            overlay.classic_options
        );
    }

    #[test]
    fn a_rootless_overlay_reads_user_xattrs() {
        let mut plan = overlay_plan();
        plan.userns = true;
        let steps = mount_steps(&plan);
        let MountStep::Overlay(overlay) = &steps[3] else { panic!("no overlay root") };
        assert_eq!(overlay.parameters.last(), Some(&("userxattr".to_string(), None)));
        assert!(overlay.classic_options.ends_with(",userxattr"));
    }

    #[test]
    fn an_overlay_keeps_copy_ups_whole_for_the_diff() {
        let MountStep::Overlay(overlay) = &mount_steps(&overlay_plan())[3] else { panic!("no overlay root") };
        for option in ["redirect_dir=nofollow", "metacopy=off", "index=off"] {
            let (key, value) = option.split_once('=').unwrap();
            assert!(overlay.parameters.contains(&(key.into(), Some(value.into()))), "{option}");
            assert!(overlay.classic_options.contains(option), "{option}");
        }
        assert!(!overlay.parameters.iter().any(|(k, _)| k == "userxattr"));
    }

    #[test]
    fn a_directory_root_is_bound_recursively() {
        let steps = mount_steps(&dir_plan());
        assert_eq!(
            steps[3],
            MountStep::Bind { source: "/images/app".into(), target: "/mnt/root".into(), recursive: true }
        );
    }

    #[test]
    fn mounts_are_made_private_before_anything_is_mounted() {
        let steps = mount_steps(&dir_plan());
        assert_eq!(steps[0], MountStep::MakeMountsPrivate);
        assert!(steps.iter().skip(1).all(|s| *s != MountStep::MakeMountsPrivate));
    }

    #[test]
    fn nothing_is_mounted_outside_the_staging_dir_before_the_pivot() {
        for plan in [dir_plan(), overlay_plan()] {
            let steps = mount_steps(&plan);
            let before = flatten(&steps[..pivot(&steps)]);
            let targets: Vec<&Path> = before.iter().filter_map(|s| mount_target(s)).collect();
            assert_eq!(targets, [Path::new("/mnt"), Path::new("/mnt/root"), Path::new("/mnt/root/dev")]);
        }
    }

    #[test]
    fn the_old_root_lands_in_the_new_dev_tmpfs() {
        let steps = mount_steps(&dir_plan());
        let dev_tmpfs = position(&steps, |s| mount_target(s) == Some(Path::new("/mnt/root/dev")));
        assert!(dev_tmpfs < pivot(&steps));
        assert_eq!(steps[pivot(&steps) - 1], MountStep::Chdir { path: "/mnt/root".into() });
        assert_eq!(
            steps[pivot(&steps)],
            MountStep::PivotRoot { new_root: ".".into(), put_old: "dev/.hoist-oldroot".into() }
        );
    }

    #[test]
    fn a_dev_in_the_image_that_is_not_a_directory_is_refused_before_mounting() {
        let steps = mount_steps(&dir_plan());
        let check = position(&steps, |s| matches!(s, MountStep::RequireDirectory { .. }));
        assert_eq!(steps[check], MountStep::RequireDirectory { path: "/mnt/root/dev".into(), what: "/dev" });
        assert!(check < position(&steps, |s| mount_target(s) == Some(Path::new("/mnt/root/dev"))));
    }

    #[test]
    fn the_old_root_is_detached_and_removed_last() {
        let steps = mount_steps(&dir_plan());
        let n = steps.len();
        assert_eq!(steps[n - 2], MountStep::Detach { target: OLD_ROOT.into() });
        assert_eq!(steps[n - 1], MountStep::RemoveDir { path: OLD_ROOT.into() });
    }

    #[test]
    fn devices_are_bound_from_the_host_with_or_without_a_user_namespace() {
        for userns in [false, true] {
            let mut plan = dir_plan();
            plan.userns = userns;
            let steps = mount_steps(&plan);
            for name in DEVICES {
                let target = Path::new("/dev").join(name);
                let made =
                    position(&steps, |s| *s == MountStep::CreateFile { path: target.clone(), mode: 0o666 });
                let source = Path::new(OLD_ROOT).join("dev").join(name);
                assert_eq!(steps[made + 1], MountStep::Bind { source, target, recursive: false }, "{name}");
            }
        }
    }

    #[test]
    fn devpts_in_a_user_namespace_leaves_out_the_unmapped_tty_group() {
        let devpts = |userns| {
            let mut plan = dir_plan();
            plan.userns = userns;
            mount_steps(&plan).into_iter().find_map(|s| match s {
                MountStep::Mount { fstype: "devpts", data, .. } => Some(data),
                _ => None,
            })
        };
        assert!(devpts(false).unwrap().contains("gid=5"));
        assert!(!devpts(true).unwrap().contains("gid="));
    }

    #[test]
    fn sys_is_read_only_whether_mounted_fresh_or_bound() {
        let steps = mount_steps(&dir_plan());
        let MountStep::FirstOf(alternatives) =
            &steps[position(&steps, |s| matches!(s, MountStep::FirstOf(_)))]
        else {
            unreachable!()
        };
        let [fresh, bound] = &alternatives[..] else { panic!("two ways to /sys: {alternatives:?}") };
        assert!(
            matches!(&fresh[..], [MountStep::Mount { fstype: "sysfs", flags, .. }] if flags.contains(MountFlags::RDONLY))
        );
        assert_eq!(bound.last(), Some(&MountStep::RemountReadonly { target: "/sys".into() }));
    }

    #[test]
    fn without_a_network_namespace_the_hosts_sys_is_bound_read_only() {
        let mut plan = dir_plan();
        plan.netns = false;
        let steps = mount_steps(&plan);
        assert!(!flatten(&steps).iter().any(|s| matches!(s, MountStep::Mount { fstype: "sysfs", .. })));
        let remount = position(&steps, |s| *s == MountStep::RemountReadonly { target: "/sys".into() });
        let MountStep::FirstOf(binds) = &steps[remount - 1] else { panic!("bind before the remount") };
        assert_eq!(binds.len(), 2, "a plain bind, then a recursive one");
    }

    #[test]
    fn masked_proc_paths_are_covered_only_where_they_exist() {
        let steps = mount_steps(&dir_plan());
        let kcore = steps.iter().find_map(|s| match s {
            MountStep::When { condition: Condition::Exists(p), steps } if p == Path::new("/proc/kcore") => {
                Some(steps)
            }
            _ => None,
        });
        assert_eq!(
            kcore.unwrap()[..],
            [MountStep::Bind { source: "/dev/null".into(), target: "/proc/kcore".into(), recursive: false }]
        );
    }

    #[test]
    fn extra_bind_mounts_come_after_the_root_and_the_kernel_filesystems() {
        let mut plan = dir_plan();
        plan.mounts =
            vec![BindMount { source: "/host/data".into(), target: "/data".into(), readonly: false }];
        let steps = mount_steps(&plan);
        let bind = position(&steps, |s| mount_target(s) == Some(Path::new("/data")));
        assert!(bind > pivot(&steps));
        assert!(bind > position(&steps, |s| mount_target(s) == Some(Path::new("/proc"))));
        let source = Path::new(OLD_ROOT).join("host/data");
        assert_eq!(
            steps[bind],
            MountStep::Bind { source: source.clone(), target: "/data".into(), recursive: true }
        );
        let point = MountStep::MountPoint {
            root: "/".into(),
            rel: "data".into(),
            kind: MountPointKind::LikeSource(source),
        };
        assert_eq!(steps[bind - 1], point);
        assert!(!matches!(steps[bind + 1], MountStep::RemountReadonly { .. }));
    }

    #[test]
    fn a_read_only_bind_mount_is_remounted_read_only_at_once() {
        let mut plan = dir_plan();
        plan.mounts =
            vec![BindMount { source: "/host/data".into(), target: "/srv/data/".into(), readonly: true }];
        let steps = mount_steps(&plan);
        let bind = position(&steps, |s| mount_target(s) == Some(Path::new("/srv/data")));
        assert_eq!(steps[bind + 1], MountStep::RemountReadonly { target: "/srv/data".into() });
    }

    #[test]
    fn etc_files_are_bound_from_the_private_dev_and_never_land_in_the_image() {
        let steps = mount_steps(&dir_plan());
        let bind = position(&steps, |s| mount_target(s) == Some(Path::new("/etc/hosts")));
        let source = PathBuf::from("/dev/.hoist-hosts");
        assert_eq!(
            steps[bind - 2..=bind + 1],
            [
                MountStep::WriteFile { path: source.clone(), content: b"127.0.0.1\tlocalhost\n".to_vec() },
                MountStep::MountPoint {
                    root: "/".into(),
                    rel: "etc/hosts".into(),
                    kind: MountPointKind::File
                },
                MountStep::Bind { source: source.clone(), target: "/etc/hosts".into(), recursive: false },
                MountStep::RemoveFile { path: source },
            ]
        );
    }

    #[test]
    fn every_mount_in_the_image_has_its_mount_point_ensured_first() {
        let mut plan = dir_plan();
        plan.mounts = vec![BindMount { source: "/x".into(), target: "/opt/x".into(), readonly: false }];
        let steps = mount_steps(&plan);
        for target in ["/proc", "/sys", "/opt/x", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"] {
            let rel = PathBuf::from(&target[1..]);
            let point = position(&steps, |s| matches!(s, MountStep::MountPoint { rel: r, .. } if *r == rel));
            let mounted =
                flatten(&steps).iter().position(|s| mount_target(s) == Some(Path::new(target))).unwrap();
            let point_flat = flatten(&steps).iter().position(|s| *s == &steps[point]).unwrap();
            assert!(point_flat < mounted, "{target}");
        }
    }

    fn mount(target: &str, kind: MountKind, readonly: bool) -> Mount {
        Mount { target: target.into(), kind, readonly }
    }

    fn volume(source: &str, copy_up: bool) -> MountKind {
        MountKind::Volume { source: source.into(), copy_up }
    }

    #[test]
    fn container_mounts_are_made_shallowest_first_after_the_binds() {
        let mut plan = dir_plan();
        plan.mounts = vec![BindMount { source: "/b".into(), target: "/b".into(), readonly: false }];
        plan.container_mounts = vec![
            mount("/data/cache", volume("/v/cache", false), false),
            mount("/data", MountKind::Bind { source: "/host/data".into() }, false),
        ];
        let steps = mount_steps(&plan);
        let at = |target: &str| position(&steps, |s| mount_target(s) == Some(Path::new(target)));
        assert!(at("/b") < at("/data") && at("/data") < at("/data/cache"));
        assert!(at("/data/cache") < at("/etc/hosts"));
    }

    #[test]
    fn an_empty_volume_is_filled_from_the_image_before_it_is_bound() {
        let mut plan = dir_plan();
        plan.container_mounts = vec![mount("/var/lib/app", volume("/store/volumes/v/_data", true), false)];
        let steps = mount_steps(&plan);
        let bind = position(&steps, |s| mount_target(s) == Some(Path::new("/var/lib/app")));
        let source = Path::new(OLD_ROOT).join("store/volumes/v/_data");
        let copy = MountStep::When {
            condition: Condition::IsDir("/var/lib/app".into()),
            steps: vec![MountStep::When {
                condition: Condition::IsEmptyDir(source.clone()),
                steps: vec![MountStep::CopyTree { from: "/var/lib/app".into(), to: source.clone() }],
            }],
        };
        assert_eq!(steps[bind - 2], copy);
        assert_eq!(
            steps[bind - 1],
            MountStep::MountPoint { root: "/".into(), rel: "var/lib/app".into(), kind: MountPointKind::Dir }
        );
        assert_eq!(steps[bind], MountStep::Bind { source, target: "/var/lib/app".into(), recursive: true });
    }

    #[test]
    fn a_volume_without_copy_up_and_a_bind_are_never_filled() {
        let mut plan = dir_plan();
        plan.container_mounts = vec![
            mount("/a", volume("/v/a", false), false),
            mount("/b", MountKind::Bind { source: "/host/b".into() }, true),
        ];
        let steps = mount_steps(&plan);
        assert!(!flatten(&steps).iter().any(|s| matches!(s, MountStep::CopyTree { .. })));
        let bind = position(&steps, |s| mount_target(s) == Some(Path::new("/b")));
        assert_eq!(steps[bind + 1], MountStep::RemountReadonly { target: "/b".into() });
    }

    #[test]
    fn a_tmpfs_gets_dockers_noexec_nosuid_nodev_unless_asked_otherwise() {
        let mut plan = dir_plan();
        let tmpfs = |exec| MountKind::Tmpfs { data: "size=1m".into(), exec, suid: false, dev: false };
        plan.container_mounts = vec![mount("/run", tmpfs(false), false), mount("/x", tmpfs(true), true)];
        let steps = mount_steps(&plan);
        let flags_of = |target: &str| {
            steps.iter().find_map(|s| match s {
                MountStep::Mount { fstype: "tmpfs", target: t, flags, data } if t == Path::new(target) => {
                    Some((*flags, data.clone()))
                }
                _ => None,
            })
        };
        assert_eq!(flags_of("/run"), Some((NOSUID_NODEV_NOEXEC, "size=1m".to_string())));
        assert_eq!(flags_of("/x").unwrap().0, MountFlags::NOSUID | MountFlags::NODEV | MountFlags::RDONLY);
    }

    #[test]
    fn a_read_only_root_is_remounted_only_after_the_working_directory_exists() {
        let mut plan = dir_plan();
        assert!(finishing_steps(&plan).is_empty());
        plan.readonly_root = true;
        assert!(!mount_steps(&plan).iter().any(|s| *s == MountStep::RemountReadonly { target: "/".into() }));
        assert_eq!(finishing_steps(&plan), [MountStep::RemountReadonly { target: "/".into() }]);
    }
}
