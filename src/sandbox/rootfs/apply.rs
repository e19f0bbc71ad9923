//! Applying a mount plan, step by step, through a [`Syscall`].
//!
//! - [`apply`]: runs the steps in order; the first failure is a
//!   [`SandboxError::Setup`] naming the step.
//! - [`MountPoints`]: the mount points made in the image, reported to the
//!   caller as they are made so that it can remove them even if the init is
//!   killed; an orphaned init removes them itself.
//! - The overlay falls back from `lowerdir+` to `mount(2)` here, where the
//!   kernel's answer is known.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use super::plan::{Condition, MountPointKind, MountStep, OverlayMount};
use super::step;
use crate::sandbox::error::SandboxError;
use crate::sandbox::report::{self, Message};
use crate::sandbox::sys::{Errno, FsconfigError, MountFlags};
use crate::sandbox::syscall::{Node, Syscall};

/// Mount points the init created in the image.
pub(crate) struct MountPoints<'r> {
    /// Relative to the root, parents before children.
    pub created: Vec<PathBuf>,
    report: BorrowedFd<'r>,
    /// Only once `/` is the sandbox root can the init remove them itself.
    pivoted: bool,
}

impl<'r> MountPoints<'r> {
    /// None yet; each one made is sent to `report`.
    pub fn new(report: BorrowedFd<'r>) -> Self {
        MountPoints { created: Vec::new(), report, pivoted: false }
    }

    /// Makes `root/rel` exist, creating missing components (the last as
    /// `kind` says) and recording each.
    fn ensure(
        &mut self,
        sys: &impl Syscall,
        root: &Path,
        rel: &Path,
        kind: &MountPointKind,
    ) -> Result<(), SandboxError> {
        let mut prefix = PathBuf::new();
        let count = rel.components().count();
        for (i, component) in rel.components().enumerate() {
            prefix.push(component);
            let full = root.join(&prefix);
            if sys.node(&full, true).is_some() {
                continue;
            }
            if sys.node(&full, false).is_some() {
                return Err(SandboxError::Setup {
                    step: format!("mount point /{}", prefix.display()),
                    message: "is a dangling symlink in the image".into(),
                });
            }
            let file = i + 1 == count
                && match kind {
                    MountPointKind::Dir => false,
                    MountPointKind::File => true,
                    MountPointKind::LikeSource(source) => {
                        sys.node(source, true).is_some_and(|node| node != Node::Dir)
                    }
                };
            let made = if file { sys.create_file(&full, 0o644) } else { sys.mkdir(&full, 0o755) };
            step(&format!("create mount point /{}", prefix.display()), made)?;
            report::send_message(self.report, &Message::MountPoint(prefix.clone()));
            self.created.push(prefix.clone());
        }
        Ok(())
    }

    /// Unmounts and removes what was created, newest first. Only for an
    /// init whose caller died (normally the caller removes them from the host
    /// side, without unmounting); before the pivot there is nothing to do.
    pub fn remove_all(&self, sys: &impl Syscall) {
        if !self.pivoted {
            return;
        }
        for rel in self.created.iter().rev() {
            let path = Path::new("/").join(rel);
            while sys.unmount_detach(&path).is_ok() {}
            let _ = match sys.node(&path, false) {
                Some(Node::Dir) => sys.remove_dir(&path),
                Some(Node::File(0) | Node::Other) => sys.remove_file(&path),
                _ => Ok(()),
            };
        }
        report::send_message(self.report, &Message::MountPointsRemoved);
    }
}

/// Runs `steps` in order through `sys`, recording mount points in `points`.
pub(crate) fn apply(
    steps: &[MountStep],
    sys: &impl Syscall,
    points: &mut MountPoints,
) -> Result<(), SandboxError> {
    steps.iter().try_for_each(|s| apply_step(s, sys, points))
}

fn apply_step(s: &MountStep, sys: &impl Syscall, points: &mut MountPoints) -> Result<(), SandboxError> {
    let at = |verb: &str, path: &Path| format!("{verb} {}", path.display());
    match s {
        MountStep::MakeMountsPrivate => step("make mounts private", sys.make_mounts_private()),
        MountStep::Mount { fstype, target, flags, data } => {
            step(&at(&format!("mount {fstype} on"), target), sys.mount(fstype, target, *flags, data))
        }
        MountStep::Bind { source, target, recursive } => step(
            &format!("bind {} on {}", source.display(), target.display()),
            sys.bind(source, target, *recursive),
        ),
        MountStep::RemountReadonly { target } => {
            let locked = step("statvfs", sys.locked_mount_flags(target))?;
            step(
                &format!("remount {} read-only", target.display()),
                sys.remount_bind(target, MountFlags::RDONLY | locked),
            )
        }
        MountStep::Overlay(overlay) => mount_overlay(sys, overlay),
        MountStep::Mkdir { path, mode } => step(&at("mkdir", path), sys.mkdir(path, *mode)),
        MountStep::CreateFile { path, mode } => step(&at("create", path), sys.create_file(path, *mode)),
        MountStep::WriteFile { path, content } => step(&at("write", path), sys.write_file(path, content)),
        MountStep::SetOwner { path, uid, gid, mode } => {
            step(&at("set the owner of", path), sys.set_owner(path, *uid, *gid, *mode))
        }
        MountStep::RemoveFile { path } => step(&at("remove", path), sys.remove_file(path)),
        MountStep::RemoveDir { path } => step(&at("remove", path), sys.remove_dir(path)),
        MountStep::Symlink { target, link } => step(&at("symlink", link), sys.symlink(target, link)),
        MountStep::CopyTree { from, to } => step(
            &format!("copy the image's {} into its empty volume", from.display()),
            sys.copy_tree(from, to),
        ),
        MountStep::RequireDirectory { path, what } => match sys.node(path, false) {
            Some(node) if node != Node::Dir => Err(SandboxError::Setup {
                step: format!("mount {what}"),
                message: format!("{what} in the image is not a directory"),
            }),
            _ => Ok(()),
        },
        MountStep::MountPoint { root, rel, kind } => points.ensure(sys, root, rel, kind),
        MountStep::Chdir { path } => step(&at("chdir", path), sys.chdir(path)),
        MountStep::PivotRoot { new_root, put_old } => {
            step("pivot_root", sys.pivot_root(new_root, put_old))?;
            points.pivoted = true;
            Ok(())
        }
        MountStep::Detach { target } => step(&at("detach", target), sys.unmount_detach(target)),
        MountStep::When { condition, steps } => {
            let holds = match condition {
                Condition::Exists(path) => sys.node(path, true).is_some(),
                Condition::IsDir(path) => sys.node(path, true) == Some(Node::Dir),
                Condition::IsEmptyDir(path) => sys.is_empty_dir(path),
            };
            if holds { apply(steps, sys, points) } else { Ok(()) }
        }
        MountStep::FirstOf(alternatives) => {
            let mut outcome = Ok(());
            for alternative in alternatives {
                outcome = apply(alternative, sys, points);
                if outcome.is_ok() {
                    break;
                }
            }
            outcome
        }
    }
}

/// The overlay with the new mount API, or with `mount(2)` where the kernel
/// lacks it (ENOSYS) or does not know `lowerdir+` (EINVAL on the first).
fn mount_overlay(sys: &impl Syscall, overlay: &OverlayMount) -> Result<(), SandboxError> {
    let errno = |e: &std::io::Error| Errno::from_io_error(e);
    match sys.mount_with_fsconfig("overlay", &overlay.parameters, &overlay.target) {
        Ok(()) => Ok(()),
        Err(FsconfigError::Open(e)) if errno(&e) == Some(Errno::NOSYS) => mount_overlay_classic(sys, overlay),
        Err(FsconfigError::Open(e)) => step("fsopen overlay", Err(e)),
        Err(FsconfigError::Parameter { index: 0, error }) if errno(&error) == Some(Errno::INVAL) => {
            mount_overlay_classic(sys, overlay)
        }
        Err(FsconfigError::Parameter { index, error }) => {
            let name = match &overlay.parameters[index] {
                (key, Some(value)) if key == "lowerdir+" => format!("overlay {key} {value}"),
                (key, _) => format!("overlay {key}"),
            };
            step(&name, Err(error))
        }
        Err(FsconfigError::Mount { step: what, error }) => step(&format!("{what} overlay"), Err(error)),
    }
}

/// The classic `mount(2)` overlay, from the layers' common parent as the
/// working directory, so that relative paths keep the options short.
pub(crate) fn mount_overlay_classic(sys: &impl Syscall, overlay: &OverlayMount) -> Result<(), SandboxError> {
    let page = sys.page_size();
    let options = &overlay.classic_options;
    if options.len() >= page {
        return Err(SandboxError::Setup {
            step: "mount overlay".into(),
            message: format!(
                "{} layers need {} bytes of mount options, more than the {page} this kernel accepts \
                 (kernels from 6.8 on have no such limit)",
                overlay.layers,
                options.len()
            ),
        });
    }
    step("chdir to layer parent", sys.chdir(&overlay.classic_dir))?;
    let mounted = step(
        &format!("mount overlay on {}", overlay.target.display()),
        sys.mount("overlay", &overlay.target, MountFlags::empty(), options),
    );
    step("chdir /", sys.chdir(Path::new("/")))?;
    mounted
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};

    use super::*;
    use crate::sandbox::report::Decoder;
    use crate::sandbox::rootfs::RootPlan;
    use crate::sandbox::rootfs::plan::{mount_steps, overlay_mount};
    use crate::sandbox::spec::{BindMount, RootFs};
    use crate::sandbox::sys;
    use crate::sandbox::syscall::{Call, FsconfigSupport, RecordingSyscall};

    /// A report pipe whose messages the test reads back.
    struct Reports {
        reader: OwnedFd,
        writer: OwnedFd,
    }

    impl Reports {
        fn new() -> Reports {
            let (reader, writer) = sys::pipe().unwrap();
            sys::set_nonblocking(&reader).unwrap();
            Reports { reader, writer }
        }

        fn mount_points(&self) -> Vec<PathBuf> {
            let mut buf = vec![0u8; 1 << 16];
            let n = sys::read(&self.reader, &mut buf).unwrap_or(0);
            let messages = Decoder::default().feed(&buf[..n]);
            messages
                .into_iter()
                .filter_map(|m| match m {
                    Message::MountPoint(p) => Some(p),
                    _ => None,
                })
                .collect()
        }
    }

    fn ensure_step(rel: &str, kind: MountPointKind) -> MountStep {
        MountStep::MountPoint { root: "/r".into(), rel: rel.into(), kind }
    }

    #[test]
    fn missing_mount_points_are_created_and_reported() {
        let sys = RecordingSyscall::with_dirs(&["/r"]);
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        apply(&[ensure_step("etc/hosts", MountPointKind::File)], &sys, &mut points).unwrap();
        assert_eq!(
            sys.calls(),
            [
                Call::Mkdir { path: "/r/etc".into(), mode: 0o755 },
                Call::CreateFile { path: "/r/etc/hosts".into(), mode: 0o644 }
            ]
        );
        assert_eq!(points.created, [PathBuf::from("etc"), PathBuf::from("etc/hosts")]);
        assert_eq!(reports.mount_points(), points.created);
    }

    #[test]
    fn existing_mount_points_are_left_alone() {
        let sys = RecordingSyscall::with_dirs(&["/r", "/r/proc"]);
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        apply(&[ensure_step("proc", MountPointKind::Dir)], &sys, &mut points).unwrap();
        assert!(sys.calls().is_empty());
        assert!(points.created.is_empty() && reports.mount_points().is_empty());
    }

    #[test]
    fn a_mount_point_that_is_a_dangling_symlink_is_refused() {
        let sys = RecordingSyscall::with_dirs(&["/r"]);
        sys.nodes.borrow_mut().insert("/r/data".into(), Node::Symlink);
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let error = apply(&[ensure_step("data", MountPointKind::Dir)], &sys, &mut points).unwrap_err();
        assert!(error.to_string().contains("dangling symlink"), "{error}");
        assert!(sys.calls().is_empty());
    }

    #[test]
    fn a_bind_mount_point_is_a_file_when_its_source_is_one() {
        let sys = RecordingSyscall::with_dirs(&["/r"]);
        sys.nodes.borrow_mut().insert("/host/conf".into(), Node::File(10));
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let kind = MountPointKind::LikeSource("/host/conf".into());
        apply(&[ensure_step("app.conf", kind)], &sys, &mut points).unwrap();
        assert_eq!(sys.calls(), [Call::CreateFile { path: "/r/app.conf".into(), mode: 0o644 }]);
    }

    #[test]
    fn a_conditional_step_runs_only_when_its_path_exists() {
        let sys = RecordingSyscall::with_dirs(&["/proc/fs"]);
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let masked = |path: &str| MountStep::When {
            condition: Condition::Exists(path.into()),
            steps: vec![MountStep::RemountReadonly { target: path.into() }],
        };
        apply(&[masked("/proc/fs"), masked("/proc/bus")], &sys, &mut points).unwrap();
        assert_eq!(
            sys.calls(),
            [Call::RemountBind { target: "/proc/fs".into(), flags: MountFlags::RDONLY | MountFlags::NOSUID }]
        );
    }

    #[test]
    fn a_read_only_remount_keeps_the_locked_flags() {
        let sys = RecordingSyscall::default();
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        apply(&[MountStep::RemountReadonly { target: "/sys".into() }], &sys, &mut points).unwrap();
        let [Call::RemountBind { flags, .. }] = &sys.calls()[..] else { panic!("one remount") };
        assert!(flags.contains(MountFlags::RDONLY) && flags.contains(MountFlags::NOSUID));
    }

    #[test]
    fn the_first_alternative_that_works_is_used() {
        let sys = RecordingSyscall::default();
        sys.refuse("/sys");
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let fresh = MountStep::Mount {
            fstype: "sysfs",
            target: "/sys".into(),
            flags: MountFlags::RDONLY,
            data: String::new(),
        };
        let bind = MountStep::Bind { source: "/old/sys".into(), target: "/other".into(), recursive: false };
        apply(&[MountStep::FirstOf(vec![vec![fresh], vec![bind.clone()]])], &sys, &mut points).unwrap();
        assert_eq!(
            sys.calls().last(),
            Some(&Call::Bind { source: "/old/sys".into(), target: "/other".into(), recursive: false })
        );
    }

    #[test]
    fn when_every_alternative_fails_the_last_error_is_reported() {
        let sys = RecordingSyscall::default();
        sys.refuse("/sys");
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let bind =
            |recursive| vec![MountStep::Bind { source: "/old/sys".into(), target: "/sys".into(), recursive }];
        let error =
            apply(&[MountStep::FirstOf(vec![bind(false), bind(true)])], &sys, &mut points).unwrap_err();
        assert!(matches!(error, SandboxError::Setup { step, .. } if step == "bind /old/sys on /sys"));
        assert_eq!(sys.calls().len(), 2);
    }

    #[test]
    fn a_dev_that_is_a_file_in_the_image_is_refused() {
        let sys = RecordingSyscall::default();
        sys.nodes.borrow_mut().insert("/r/dev".into(), Node::File(0));
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let check = MountStep::RequireDirectory { path: "/r/dev".into(), what: "/dev" };
        let error = apply(&[check], &sys, &mut points).unwrap_err();
        assert!(error.to_string().contains("/dev in the image is not a directory"), "{error}");
    }

    fn overlay() -> OverlayMount {
        let lower = ["/s/l2".into(), "/s/l1".into()];
        overlay_mount(&lower, Path::new("/s/w/upper"), Path::new("/s/w/work"), Path::new("/mnt/root"), false)
    }

    #[test]
    fn an_overlay_is_mounted_with_the_new_mount_api_where_the_kernel_has_it() {
        let sys = RecordingSyscall::default();
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        apply(&[MountStep::Overlay(overlay())], &sys, &mut points).unwrap();
        assert!(matches!(&sys.calls()[..], [Call::Fsconfig { fstype, .. }] if fstype == "overlay"));
    }

    #[test]
    fn without_lowerdir_plus_the_overlay_is_mounted_classically_from_the_layers_parent() {
        for support in [FsconfigSupport::None, FsconfigSupport::NoLowerdirPlus] {
            let sys = RecordingSyscall::default().with_fsconfig(support);
            let reports = Reports::new();
            let mut points = MountPoints::new(reports.writer.as_fd());
            apply(&[MountStep::Overlay(overlay())], &sys, &mut points).unwrap();
            assert_eq!(
                sys.calls()[1..],
                [
                    Call::Chdir("/s".into()),
                    Call::Mount {
                        fstype: "overlay".into(),
                        target: "/mnt/root".into(),
                        flags: MountFlags::empty(),
                        data: overlay().classic_options,
                    },
                    Call::Chdir("/".into()),
                ],
                "{support:?}"
            );
        }
    }

    #[test]
    fn classic_overlay_options_longer_than_a_page_are_refused() {
        let sys = RecordingSyscall::default().with_fsconfig(FsconfigSupport::None).with_page_size(64);
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let error = apply(&[MountStep::Overlay(overlay())], &sys, &mut points).unwrap_err();
        assert!(error.to_string().contains("2 layers need"), "{error}");
        assert_eq!(sys.calls().len(), 1, "nothing mounted");
    }

    #[test]
    fn a_whole_plan_builds_the_root_on_an_image_missing_its_mount_points() {
        let sys = RecordingSyscall::with_dirs(&["/mnt", "/host/data"]);
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let plan = RootPlan {
            root: RootFs::Dir("/images/app".into()),
            staging: "/mnt".into(),
            mounts: vec![BindMount { source: "/host/data".into(), target: "/data".into(), readonly: true }],
            container_mounts: Vec::new(),
            readonly_root: false,
            hosts: String::new(),
            resolv_conf: String::new(),
            hostname: "hoist\n".into(),
            userns: true,
            netns: false,
        };
        apply(&mount_steps(&plan), &sys, &mut points).unwrap();
        let created: Vec<&str> = points.created.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            created,
            ["dev", "proc", "sys", "data", "etc", "etc/hosts", "etc/resolv.conf", "etc/hostname"]
        );
        assert_eq!(reports.mount_points(), points.created);
        assert!(points.pivoted);
        assert_eq!(sys.calls().last(), Some(&Call::RemoveDir("/dev/.hoist-oldroot".into())));
    }

    #[test]
    fn an_orphaned_init_unmounts_and_removes_its_mount_points_newest_first() {
        let sys = RecordingSyscall::with_dirs(&["/", "/r"]);
        let reports = Reports::new();
        let mut points = MountPoints::new(reports.writer.as_fd());
        let steps = [
            MountStep::PivotRoot { new_root: ".".into(), put_old: "old".into() },
            MountStep::MountPoint { root: "/".into(), rel: "etc/hosts".into(), kind: MountPointKind::File },
            MountStep::Bind {
                source: "/dev/.hoist-hosts".into(),
                target: "/etc/hosts".into(),
                recursive: false,
            },
        ];
        apply(&steps, &sys, &mut points).unwrap();
        let before = sys.calls().len();
        points.remove_all(&sys);
        assert_eq!(
            sys.calls()[before..],
            [
                Call::UnmountDetach("/etc/hosts".into()),
                Call::UnmountDetach("/etc/hosts".into()),
                Call::RemoveFile("/etc/hosts".into()),
                Call::UnmountDetach("/etc".into()),
                Call::RemoveDir("/etc".into()),
            ]
        );
    }

    #[test]
    fn an_empty_volume_is_filled_and_a_full_one_is_left_alone() {
        use crate::sandbox::spec::{Mount, MountKind};
        for (filled, copies) in [(false, 1), (true, 0)] {
            let sys = RecordingSyscall::with_dirs(&["/mnt", "/data", "/dev/.hoist-oldroot/v"]);
            if filled {
                sys.nodes.borrow_mut().insert("/dev/.hoist-oldroot/v/old".into(), Node::File(1));
            }
            let reports = Reports::new();
            let mut points = MountPoints::new(reports.writer.as_fd());
            let mounts = [Mount {
                target: "/data".into(),
                kind: MountKind::Volume { source: "/v".into(), copy_up: true },
                readonly: false,
            }];
            let steps = super::super::plan::container_mounts(&mounts, false);
            apply(&steps, &sys, &mut points).unwrap();
            let copied = sys.calls().iter().filter(|c| matches!(c, Call::CopyTree { .. })).count();
            assert_eq!(copied, copies, "volume filled: {filled}");
        }
    }
}
