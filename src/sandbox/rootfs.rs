//! Inside the sandbox's mount namespace: the root (bind or overlay), the
//! pivot, and the kernel filesystems, devices and `/etc` files Docker gives a
//! container. Runs in the pid-namespace init before the user process starts.

use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::SandboxError;
use super::report::{self, Message};
use super::spec::{BindMount, RootFs};
use super::sys::{self, Errno, FsconfigError, MountFlags};

/// Where the old root stays reachable between pivot_root and its detach;
/// inside the sandbox's private /dev tmpfs, so it never touches the image.
const OLD_ROOT: &str = "/dev/.hoist-oldroot";

/// The device nodes bound from the host into the fresh /dev.
pub(crate) const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV).union(MountFlags::NOEXEC);

pub(crate) fn step<T>(name: &str, r: io::Result<T>) -> Result<T, SandboxError> {
    r.map_err(|e| SandboxError::Setup { step: name.to_string(), message: e.to_string() })
}

/// What the init needs to build the root, prepared by the parent.
pub(crate) struct RootPlan {
    pub root: RootFs,
    pub staging: PathBuf,
    pub mounts: Vec<BindMount>,
    pub hosts: String,
    pub resolv_conf: String,
    pub hostname: String,
    pub userns: bool,
    pub netns: bool,
}

/// Mount points the init created in the image, reported to the parent as
/// they are made so that it can clean up even if the init is killed.
pub(crate) struct MountPoints<'r> {
    pub created: Vec<PathBuf>,
    report: BorrowedFd<'r>,
    /// Only once `/` is the sandbox root can the init remove them itself.
    pivoted: bool,
}

impl<'r> MountPoints<'r> {
    pub fn new(report: BorrowedFd<'r>) -> Self {
        MountPoints { created: Vec::new(), report, pivoted: false }
    }

    /// Makes `root/rel` exist (a directory, or an empty file when `file`),
    /// creating missing components and recording each.
    fn ensure(&mut self, root: &Path, rel: &str, file: bool) -> Result<PathBuf, SandboxError> {
        let rel = Path::new(rel.trim_start_matches('/'));
        let mut prefix = PathBuf::new();
        let count = rel.components().count();
        for (i, comp) in rel.components().enumerate() {
            prefix.push(comp);
            let full = root.join(&prefix);
            if std::fs::metadata(&full).is_ok() {
                continue;
            }
            if std::fs::symlink_metadata(&full).is_ok() {
                return Err(SandboxError::Setup {
                    step: format!("mount point /{}", prefix.display()),
                    message: "is a dangling symlink in the image".into(),
                });
            }
            let made = if file && i + 1 == count {
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&full).map(drop)
            } else {
                std::fs::DirBuilder::new().mode(0o755).create(&full)
            };
            step(&format!("create mount point /{}", prefix.display()), made)?;
            report::send_message(self.report, &Message::MountPoint(prefix.clone()));
            self.created.push(prefix.clone());
        }
        Ok(root.join(rel))
    }

    /// Unmounts and removes what was created, newest first. Only for an
    /// init whose caller died (normally the caller removes them from the host
    /// side, without unmounting); before the pivot there is nothing to do.
    pub fn remove_all(&self) {
        if !self.pivoted {
            return;
        }
        for rel in self.created.iter().rev() {
            let path = Path::new("/").join(rel);
            while sys::unmount_detach(&path).is_ok() {}
            let removed = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => std::fs::remove_dir(&path),
                Ok(m) if m.len() == 0 => std::fs::remove_file(&path),
                _ => Ok(()),
            };
            let _ = removed;
        }
        report::send_message(self.report, &Message::MountPointsRemoved);
    }
}

fn bind(source: &Path, target: &Path, recursive: bool) -> Result<(), SandboxError> {
    step(&format!("bind {} on {}", source.display(), target.display()), sys::bind(source, target, recursive))
}

/// Remounts a bind mount read-only, keeping the flags the kernel locks in a
/// user namespace (nosuid, nodev, noexec, atime).
fn remount_readonly(target: &Path) -> Result<(), SandboxError> {
    let locked = step("statvfs", sys::locked_mount_flags(target))?;
    step(
        &format!("remount {} read-only", target.display()),
        sys::remount_bind(target, MountFlags::RDONLY | locked),
    )
}

fn mount_fs(fstype: &str, target: &Path, flags: MountFlags, data: &str) -> Result<(), SandboxError> {
    step(&format!("mount {fstype} on {}", target.display()), sys::mount(fstype, target, flags, data))
}

/// Overlay options the snapshot diff relies on (`userxattr` refuses
/// `redirect_dir=off`, hence `nofollow`).
const OVERLAY_OPTIONS: [(&str, &str); 3] =
    [("redirect_dir", "nofollow"), ("metacopy", "off"), ("index", "off")];

/// Mounts the overlay with the new mount API, one `lowerdir+` per layer, so
/// the layer count is not limited by the page-sized option string.
fn mount_overlay_fsconfig(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    userns: bool,
) -> Result<bool, SandboxError> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut parameters: Vec<(String, Option<String>)> =
        lower.iter().map(|l| ("lowerdir+".to_string(), Some(path(l)))).collect();
    parameters.push(("upperdir".into(), Some(path(upper))));
    parameters.push(("workdir".into(), Some(path(work))));
    // Every copy-up must be a whole file in the upper dir, with no
    // redirects or index entries, for the snapshot diff to read it as a
    // layer: whatever the kernel's defaults are.
    parameters.extend(OVERLAY_OPTIONS.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))));
    if userns {
        parameters.push(("userxattr".into(), None));
    }
    match sys::mount_with_fsconfig("overlay", &parameters, target) {
        Ok(()) => Ok(true),
        Err(FsconfigError::Open(e)) if Errno::from_io_error(&e) == Some(Errno::NOSYS) => Ok(false),
        Err(FsconfigError::Open(e)) => step("fsopen overlay", Err(e)),
        // Kernels before 6.8 do not know `lowerdir+`.
        Err(FsconfigError::Parameter { index: 0, error })
            if Errno::from_io_error(&error) == Some(Errno::INVAL) =>
        {
            Ok(false)
        }
        Err(FsconfigError::Parameter { index, error }) => {
            let name = match &parameters[index] {
                (key, Some(value)) if key == "lowerdir+" => format!("overlay {key} {value}"),
                (key, _) => format!("overlay {key}"),
            };
            step(&name, Err(error))
        }
        Err(FsconfigError::Mount { step: what, error }) => step(&format!("{what} overlay"), Err(error)),
    }
}

/// The classic `mount(2)` fallback: paths relative to their common parent
/// (the working directory) keep the option string short.
fn mount_overlay_classic(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    userns: bool,
) -> Result<(), SandboxError> {
    let all: Vec<&Path> = lower.iter().map(PathBuf::as_path).chain([upper, work]).collect();
    let mut common = all[0].parent().unwrap_or(Path::new("/")).to_path_buf();
    while !all.iter().all(|p| p.starts_with(&common)) {
        if !common.pop() {
            break;
        }
    }
    let rel = |p: &Path| -> String {
        let r = p.strip_prefix(&common).unwrap_or(p).to_string_lossy().into_owned();
        r.replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,")
    };
    let lowers: Vec<String> = lower.iter().map(|l| rel(l)).collect();
    let mut data = format!("lowerdir={},upperdir={},workdir={}", lowers.join(":"), rel(upper), rel(work));
    for (key, value) in OVERLAY_OPTIONS {
        data.push_str(&format!(",{key}={value}"));
    }
    if userns {
        data.push_str(",userxattr");
    }
    let page = sys::page_size();
    if data.len() >= page {
        return Err(SandboxError::Setup {
            step: "mount overlay".into(),
            message: format!(
                "{} layers need {} bytes of mount options, more than the {page} this kernel accepts \
                 (kernels from 6.8 on have no such limit)",
                lower.len(),
                data.len()
            ),
        });
    }
    step("chdir to layer parent", sys::chdir(&common))?;
    let r = mount_fs("overlay", target, MountFlags::empty(), &data);
    step("chdir /", sys::chdir(Path::new("/")))?;
    r
}

/// Builds the root at `plan.staging/root`, pivots into it and sets up
/// /dev, /proc, /sys, extra binds and the /etc files. Returns with `/` the
/// sandbox root and the old root detached.
pub(crate) fn setup(plan: &RootPlan, points: &mut MountPoints) -> Result<(), SandboxError> {
    step("make mounts private", sys::make_mounts_private())?;
    mount_fs("tmpfs", &plan.staging, MountFlags::NOSUID | MountFlags::NODEV, "mode=0700,size=64k")?;
    let new_root = plan.staging.join("root");
    step("mkdir staging root", std::fs::create_dir(&new_root))?;
    match &plan.root {
        RootFs::Dir(dir) => bind(dir, &new_root, true)?,
        RootFs::Overlay { lower, upper, work } => {
            if !mount_overlay_fsconfig(lower, upper, work, &new_root, plan.userns)? {
                mount_overlay_classic(lower, upper, work, &new_root, plan.userns)?;
            }
        }
    }

    // /dev goes first: it holds the old root while the image's own paths
    // are set up with symlinks resolving inside the image.
    let dev_path = new_root.join("dev");
    if std::fs::symlink_metadata(&dev_path).is_ok_and(|m| !m.is_dir()) {
        return Err(SandboxError::Setup {
            step: "mount /dev".into(),
            message: "/dev in the image is not a directory".into(),
        });
    }
    let dev = points.ensure(&new_root, "dev", false)?;
    mount_fs("tmpfs", &dev, MountFlags::NOSUID, "mode=0755,size=64k")?;
    step("mkdir old root", std::fs::DirBuilder::new().mode(0o700).create(dev.join(".hoist-oldroot")))?;
    step("chdir new root", sys::chdir(&new_root))?;
    step("pivot_root", sys::pivot_root(Path::new("."), Path::new("dev/.hoist-oldroot")))?;
    step("chdir /", sys::chdir(Path::new("/")))?;
    points.pivoted = true;
    let old = Path::new(OLD_ROOT);
    let root = Path::new("/");

    setup_dev(old, plan.userns)?;
    setup_proc(points)?;
    setup_sys(plan, points, old)?;
    for m in &plan.mounts {
        let source = old.join(m.source.strip_prefix("/").unwrap_or(&m.source));
        let is_file = std::fs::metadata(&source).map(|m| !m.is_dir()).unwrap_or(false);
        let target = points.ensure(root, &m.target, is_file)?;
        bind(&source, &target, true)?;
        if m.readonly {
            remount_readonly(&target)?;
        }
    }
    for (name, content) in
        [("hosts", &plan.hosts), ("resolv.conf", &plan.resolv_conf), ("hostname", &plan.hostname)]
    {
        // The source lives in the /dev tmpfs only until the bind holds it.
        let source = PathBuf::from(format!("/dev/.hoist-{name}"));
        step(&format!("write {name}"), std::fs::write(&source, content))?;
        let target = points.ensure(root, &format!("etc/{name}"), true)?;
        bind(&source, &target, false)?;
        step("remove /etc file source", std::fs::remove_file(&source))?;
    }
    step("detach old root", sys::unmount_detach(old))?;
    step("remove old root dir", std::fs::remove_dir(old))?;
    Ok(())
}

fn setup_dev(old: &Path, userns: bool) -> Result<(), SandboxError> {
    let dev = Path::new("/dev");
    for name in DEVICES {
        let target = dev.join(name);
        step(
            &format!("create /dev/{name}"),
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o666).open(&target),
        )?;
        bind(&old.join("dev").join(name), &target, false)?;
    }
    let pts = dev.join("pts");
    step("mkdir /dev/pts", std::fs::create_dir(&pts))?;
    // gid 5 (tty) is not mapped in a rootless namespace.
    let pts_opts = if userns {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    mount_fs("devpts", &pts, MountFlags::NOSUID | MountFlags::NOEXEC, pts_opts)?;
    let shm = dev.join("shm");
    step("mkdir /dev/shm", std::fs::create_dir(&shm))?;
    mount_fs("tmpfs", &shm, NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k")?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        step(&format!("symlink /dev/{link}"), std::os::unix::fs::symlink(target, dev.join(link)))?;
    }
    Ok(())
}

fn setup_proc(points: &mut MountPoints) -> Result<(), SandboxError> {
    let proc = points.ensure(Path::new("/"), "proc", false)?;
    mount_fs("proc", &proc, NOSUID_NODEV_NOEXEC, "")?;
    // Docker's read-only and masked /proc paths.
    for ro in ["bus", "fs", "irq", "sys", "sysrq-trigger"] {
        let p = proc.join(ro);
        if p.exists() {
            bind(&p, &p, true)?;
            remount_readonly(&p)?;
        }
    }
    for masked in ["kcore", "keys", "timer_list", "sched_debug", "latency_stats", "timer_stats"] {
        let p = proc.join(masked);
        if p.exists() {
            bind(Path::new("/dev/null"), &p, false)?;
        }
    }
    for masked in ["acpi", "scsi"] {
        let p = proc.join(masked);
        if p.is_dir() {
            mount_fs("tmpfs", &p, NOSUID_NODEV_NOEXEC | MountFlags::RDONLY, "size=0")?;
        }
    }
    Ok(())
}

fn setup_sys(plan: &RootPlan, points: &mut MountPoints, old: &Path) -> Result<(), SandboxError> {
    let sys_dir = points.ensure(Path::new("/"), "sys", false)?;
    let flags = NOSUID_NODEV_NOEXEC | MountFlags::RDONLY;
    // A fresh sysfs shows the sandbox's own network namespace; it is refused
    // without a netns of our own, and in some rootless setups.
    if plan.netns && mount_fs("sysfs", &sys_dir, flags, "").is_ok() {
        return Ok(());
    }
    // In a user namespace the host's /sys has locked submounts (cgroup,
    // securityfs…): only a recursive bind may take it.
    bind(&old.join("sys"), &sys_dir, false).or_else(|_| bind(&old.join("sys"), &sys_dir, true))?;
    remount_readonly(&sys_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pre-6.8 path: relative paths from the layers' common parent.
    #[test]
    fn classic_overlay_mount_with_relative_paths() {
        if crate::idmap::rootless() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("hoist-classic-overlay-{}", std::process::id()));
        let names = ["l1", "l2", "upper", "work", "merged"];
        for n in names {
            std::fs::create_dir_all(dir.join(n)).unwrap();
        }
        std::fs::write(dir.join("l1/a"), "1").unwrap();
        std::fs::write(dir.join("l2/b"), "2").unwrap();
        // SAFETY: the child mounts, reads and leaves through exit_now.
        let forked = unsafe { sys::fork() }.unwrap();
        if let sys::Forked::Child(_) = forked {
            let ok = sys::unshare(sys::UnshareFlags::NEWNS).is_ok()
                && sys::make_mounts_private().is_ok()
                && mount_overlay_classic(
                    &[dir.join("l1"), dir.join("l2")],
                    &dir.join("upper"),
                    &dir.join("work"),
                    &dir.join("merged"),
                    false,
                )
                .is_ok()
                && std::fs::read_to_string(dir.join("merged/a")).is_ok_and(|s| s == "1")
                && std::fs::read_to_string(dir.join("merged/b")).is_ok_and(|s| s == "2");
            sys::exit_now(if ok { 0 } else { 1 });
        }
        let sys::Forked::Parent(pid) = forked else { unreachable!() };
        let ended = sys::wait_for(pid).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(ended, sys::Ended::Exited(0));
    }
}
