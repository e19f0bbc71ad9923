//! The seam between building a root and the kernel, as youki's `Syscall` trait is.
//!
//! - [`Syscall`]: the operations a mount plan needs (mounts, pivot_root,
//!   directories, files, symlinks, and looking at what exists).
//! - [`LinuxSyscall`]: the real ones, each a call into [`super::sys`].
//! - `RecordingSyscall` (tests only): records every call over an imagined
//!   filesystem, and fails the calls a test tells it to.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::sys::{self, FsconfigError, MountFlags};

/// What is at a path, as far as building a root cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    /// A regular file of this many bytes.
    File(u64),
    Symlink,
    /// A device, fifo or socket.
    Other,
}

/// The kernel operations a mount plan is applied with.
pub(crate) trait Syscall {
    /// Makes every mount below `/` private, recursively.
    fn make_mounts_private(&self) -> io::Result<()>;
    /// Mounts a new `fstype` filesystem on `target`.
    fn mount(&self, fstype: &str, target: &Path, flags: MountFlags, data: &str) -> io::Result<()>;
    /// Binds `source` onto `target`.
    fn bind(&self, source: &Path, target: &Path, recursive: bool) -> io::Result<()>;
    /// The flags of the mount at `target` a remount must keep.
    fn locked_mount_flags(&self, target: &Path) -> io::Result<MountFlags>;
    /// Remounts the bind mount at `target` with `flags`.
    fn remount_bind(&self, target: &Path, flags: MountFlags) -> io::Result<()>;
    /// Mounts with the new mount API (see [`sys::mount_with_fsconfig`]).
    fn mount_with_fsconfig(
        &self,
        fstype: &str,
        parameters: &[(String, Option<String>)],
        target: &Path,
    ) -> Result<(), FsconfigError>;
    /// The size of a memory page, which bounds `mount(2)` options.
    fn page_size(&self) -> usize;
    /// Detaches the mount at `target`.
    fn unmount_detach(&self, target: &Path) -> io::Result<()>;
    /// `pivot_root(new_root, put_old)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    /// Changes the working directory.
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// Creates the directory `path`, which must not exist.
    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Creates the empty file `path`, which must not exist.
    fn create_file(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Writes `content` to the file `path`, creating it if need be.
    fn write_file(&self, path: &Path, content: &[u8]) -> io::Result<()>;
    /// Creates the symlink `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes the empty directory `path`.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// What is at `path`, following a last symlink when `follow`.
    fn node(&self, path: &Path, follow: bool) -> Option<Node>;
    /// Whether `path` (symlinks followed) is a directory with nothing in it.
    fn is_empty_dir(&self, path: &Path) -> bool;
    /// Copies what directory `from` holds into directory `to` (owners,
    /// modes and times kept; devices, fifos and sockets left out) and gives
    /// `to` the owner and mode of `from`.
    fn copy_tree(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Gives `path` (no symlink followed) an owner and a mode.
    fn set_owner(&self, path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()>;
}

/// The kernel's own operations.
pub(crate) struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn make_mounts_private(&self) -> io::Result<()> {
        sys::make_mounts_private()
    }

    fn mount(&self, fstype: &str, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
        sys::mount(fstype, target, flags, data)
    }

    fn bind(&self, source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
        sys::bind(source, target, recursive)
    }

    fn locked_mount_flags(&self, target: &Path) -> io::Result<MountFlags> {
        sys::locked_mount_flags(target)
    }

    fn remount_bind(&self, target: &Path, flags: MountFlags) -> io::Result<()> {
        sys::remount_bind(target, flags)
    }

    fn mount_with_fsconfig(
        &self,
        fstype: &str,
        parameters: &[(String, Option<String>)],
        target: &Path,
    ) -> Result<(), FsconfigError> {
        sys::mount_with_fsconfig(fstype, parameters, target)
    }

    fn page_size(&self) -> usize {
        sys::page_size()
    }

    fn unmount_detach(&self, target: &Path) -> io::Result<()> {
        sys::unmount_detach(target)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        sys::pivot_root(new_root, put_old)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        sys::chdir(path)
    }

    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        std::fs::DirBuilder::new().mode(mode).create(path)
    }

    fn create_file(&self, path: &Path, mode: u32) -> io::Result<()> {
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map(drop)
    }

    fn write_file(&self, path: &Path, content: &[u8]) -> io::Result<()> {
        std::fs::write(path, content)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn node(&self, path: &Path, follow: bool) -> Option<Node> {
        let metadata = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) }.ok()?;
        let kind = metadata.file_type();
        Some(if kind.is_dir() {
            Node::Dir
        } else if kind.is_file() {
            Node::File(metadata.len())
        } else if kind.is_symlink() {
            Node::Symlink
        } else {
            Node::Other
        })
    }

    fn is_empty_dir(&self, path: &Path) -> bool {
        std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
    }

    fn copy_tree(&self, from: &Path, to: &Path) -> io::Result<()> {
        copy_dir_contents(from, to)?;
        copy_owner_and_mode(from, to)
    }

    fn set_owner(&self, path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
    }
}

/// Copies the entries of `from` into `to`, depth first; a directory's times
/// are set once it is filled.
fn copy_dir_contents(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::DirBuilder::new().mode(0o700).create(&dest)?;
            copy_dir_contents(&source, &dest)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &dest)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &dest)?;
        } else if kind.is_block_device() || kind.is_char_device() || kind.is_fifo() || kind.is_socket() {
            continue;
        }
        copy_owner_and_mode(&source, &dest)?;
    }
    Ok(())
}

/// Gives `dest` the owner, mode and times of `source`, never following a
/// last symlink (a symlink's mode is not its own to set).
fn copy_owner_and_mode(source: &Path, dest: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let metadata = std::fs::symlink_metadata(source)?;
    sys::lchown(dest, metadata.uid(), metadata.gid())?;
    if !metadata.file_type().is_symlink() {
        // After the chown, which clears set-user-ID and set-group-ID bits.
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(metadata.mode() & 0o7777))?;
    }
    sys::set_times_nofollow(
        dest,
        (metadata.atime(), metadata.atime_nsec()),
        (metadata.mtime(), metadata.mtime_nsec()),
    )
}

#[cfg(test)]
pub(crate) use recording::{Call, FsconfigSupport, RecordingSyscall};

#[cfg(test)]
mod recording {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::io;
    use std::path::{Path, PathBuf};

    use super::{Node, Syscall};
    use crate::sandbox::sys::{Errno, FsconfigError, MountFlags};

    /// One operation a [`RecordingSyscall`] was asked for.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) enum Call {
        MakeMountsPrivate,
        Mount { fstype: String, target: PathBuf, flags: MountFlags, data: String },
        Bind { source: PathBuf, target: PathBuf, recursive: bool },
        RemountBind { target: PathBuf, flags: MountFlags },
        Fsconfig { fstype: String, parameters: Vec<(String, Option<String>)>, target: PathBuf },
        UnmountDetach(PathBuf),
        PivotRoot { new_root: PathBuf, put_old: PathBuf },
        Chdir(PathBuf),
        Mkdir { path: PathBuf, mode: u32 },
        CreateFile { path: PathBuf, mode: u32 },
        WriteFile { path: PathBuf, content: Vec<u8> },
        Symlink { target: PathBuf, link: PathBuf },
        CopyTree { from: PathBuf, to: PathBuf },
        SetOwner { path: PathBuf, uid: u32, gid: u32, mode: u32 },
        RemoveFile(PathBuf),
        RemoveDir(PathBuf),
    }

    /// What the imagined kernel knows of the new mount API.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(crate) enum FsconfigSupport {
        #[default]
        Full,
        /// No fsopen at all (before Linux 5.2).
        None,
        /// No `lowerdir+` for overlay (before Linux 6.8).
        NoLowerdirPlus,
    }

    /// Records calls instead of making them, over an imagined filesystem
    /// that the calls change (pivot_root included); no root, no namespace.
    #[derive(Default)]
    pub(crate) struct RecordingSyscall {
        pub calls: RefCell<Vec<Call>>,
        /// What exists, by absolute path.
        pub nodes: RefCell<BTreeMap<PathBuf, Node>>,
        /// Mounted targets, oldest first.
        mounted: RefCell<Vec<PathBuf>>,
        cwd: RefCell<PathBuf>,
        /// Mount operations on these targets fail with EPERM.
        refused_targets: RefCell<Vec<PathBuf>>,
        fsconfig: FsconfigSupport,
        /// What `page_size` answers (0: 4096).
        page_size: usize,
    }

    impl RecordingSyscall {
        /// A recorder over a filesystem holding these directories.
        pub(crate) fn with_dirs(dirs: &[&str]) -> RecordingSyscall {
            let recorder = RecordingSyscall::default();
            for dir in dirs {
                recorder.nodes.borrow_mut().insert(PathBuf::from(dir), Node::Dir);
            }
            recorder
        }

        /// The same, with this much of the new mount API.
        pub(crate) fn with_fsconfig(mut self, support: FsconfigSupport) -> RecordingSyscall {
            self.fsconfig = support;
            self
        }

        /// The same, with pages of `size` bytes.
        pub(crate) fn with_page_size(mut self, size: usize) -> RecordingSyscall {
            self.page_size = size;
            self
        }

        /// Makes mount operations on `target` fail.
        pub(crate) fn refuse(&self, target: &str) {
            self.refused_targets.borrow_mut().push(PathBuf::from(target));
        }

        /// The calls made so far.
        pub(crate) fn calls(&self) -> Vec<Call> {
            self.calls.borrow().clone()
        }

        fn record(&self, call: Call) {
            self.calls.borrow_mut().push(call);
        }

        fn mount_on(&self, call: Call, target: &Path) -> io::Result<()> {
            self.record(call);
            if self.refused_targets.borrow().iter().any(|t| t == target) {
                return Err(Errno::PERM.into());
            }
            self.mounted.borrow_mut().push(target.to_owned());
            Ok(())
        }

        fn create(&self, call: Call, path: &Path, node: Node) -> io::Result<()> {
            self.record(call);
            let mut nodes = self.nodes.borrow_mut();
            if nodes.contains_key(path) {
                return Err(Errno::EXIST.into());
            }
            nodes.insert(path.to_owned(), node);
            Ok(())
        }
    }

    impl Syscall for RecordingSyscall {
        fn make_mounts_private(&self) -> io::Result<()> {
            self.record(Call::MakeMountsPrivate);
            Ok(())
        }

        fn mount(&self, fstype: &str, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
            let call = Call::Mount { fstype: fstype.into(), target: target.into(), flags, data: data.into() };
            self.mount_on(call, target)
        }

        fn bind(&self, source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
            self.mount_on(Call::Bind { source: source.into(), target: target.into(), recursive }, target)
        }

        fn locked_mount_flags(&self, _: &Path) -> io::Result<MountFlags> {
            Ok(MountFlags::NOSUID)
        }

        fn remount_bind(&self, target: &Path, flags: MountFlags) -> io::Result<()> {
            self.mount_on(Call::RemountBind { target: target.into(), flags }, target)
        }

        fn mount_with_fsconfig(
            &self,
            fstype: &str,
            parameters: &[(String, Option<String>)],
            target: &Path,
        ) -> Result<(), FsconfigError> {
            self.record(Call::Fsconfig {
                fstype: fstype.into(),
                parameters: parameters.to_vec(),
                target: target.into(),
            });
            match self.fsconfig {
                FsconfigSupport::Full => {
                    self.mounted.borrow_mut().push(target.to_owned());
                    Ok(())
                }
                FsconfigSupport::None => Err(FsconfigError::Open(Errno::NOSYS.into())),
                FsconfigSupport::NoLowerdirPlus => {
                    Err(FsconfigError::Parameter { index: 0, error: Errno::INVAL.into() })
                }
            }
        }

        fn page_size(&self) -> usize {
            if self.page_size == 0 { 4096 } else { self.page_size }
        }

        fn unmount_detach(&self, target: &Path) -> io::Result<()> {
            self.record(Call::UnmountDetach(target.into()));
            let mut mounted = self.mounted.borrow_mut();
            let last = mounted.iter().rposition(|m| m == target).ok_or(Errno::INVAL)?;
            mounted.remove(last);
            Ok(())
        }

        /// The working directory becomes `/`; the rest moves below `put_old`.
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
            self.record(Call::PivotRoot { new_root: new_root.into(), put_old: put_old.into() });
            let cwd = self.cwd.borrow().clone();
            let new_root = if new_root == Path::new(".") { cwd } else { new_root.to_owned() };
            let old = Path::new("/").join(put_old);
            let nodes = std::mem::take(&mut *self.nodes.borrow_mut());
            for (path, node) in nodes {
                let moved = match path.strip_prefix(&new_root) {
                    Ok(inside) => Path::new("/").join(inside),
                    Err(_) => old.join(path.strip_prefix("/").unwrap_or(&path)),
                };
                self.nodes.borrow_mut().insert(moved, node);
            }
            self.mounted.borrow_mut().push(old);
            Ok(())
        }

        fn chdir(&self, path: &Path) -> io::Result<()> {
            self.record(Call::Chdir(path.into()));
            let joined = self.cwd.borrow().join(path);
            *self.cwd.borrow_mut() = joined;
            Ok(())
        }

        fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
            self.create(Call::Mkdir { path: path.into(), mode }, path, Node::Dir)
        }

        fn create_file(&self, path: &Path, mode: u32) -> io::Result<()> {
            self.create(Call::CreateFile { path: path.into(), mode }, path, Node::File(0))
        }

        fn write_file(&self, path: &Path, content: &[u8]) -> io::Result<()> {
            self.record(Call::WriteFile { path: path.into(), content: content.to_vec() });
            self.nodes.borrow_mut().insert(path.into(), Node::File(content.len() as u64));
            Ok(())
        }

        fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
            self.create(Call::Symlink { target: target.into(), link: link.into() }, link, Node::Symlink)
        }

        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.record(Call::RemoveFile(path.into()));
            self.nodes.borrow_mut().remove(path).map(drop).ok_or_else(|| Errno::NOENT.into())
        }

        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            self.record(Call::RemoveDir(path.into()));
            self.nodes.borrow_mut().remove(path).map(drop).ok_or_else(|| Errno::NOENT.into())
        }

        /// Symlinks lead nowhere here: followed, one is dangling.
        fn node(&self, path: &Path, follow: bool) -> Option<Node> {
            match self.nodes.borrow().get(path).copied() {
                Some(Node::Symlink) if follow => None,
                node => node,
            }
        }

        fn is_empty_dir(&self, path: &Path) -> bool {
            let nodes = self.nodes.borrow();
            nodes.get(path) == Some(&Node::Dir) && !nodes.keys().any(|p| p != path && p.starts_with(path))
        }

        fn copy_tree(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.record(Call::CopyTree { from: from.into(), to: to.into() });
            Ok(())
        }

        fn set_owner(&self, path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
            self.record(Call::SetOwner { path: path.into(), uid, gid, mode });
            Ok(())
        }
    }
}
