//! The extraction destination: a directory opened once, then reached only
//! through clean relative paths walked one component at a time with
//! `O_NOFOLLOW`, so no name in a layer can lead a write outside it.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::LayerError;

pub(crate) struct Destination {
    root: OwnedFd,
    root_path: PathBuf,
    /// The directory most recently opened: layers list siblings together, so
    /// most entries reuse it instead of walking from the root again.
    cached: Option<(Vec<u8>, OwnedFd)>,
}

impl Destination {
    pub(crate) fn open(path: &Path) -> Result<Destination, LayerError> {
        let root = rustix::fs::open(path, dir_flags(), Mode::empty())
            .map_err(|e| LayerError::Filesystem { path: path.to_owned(), source: e.into() })?;
        Ok(Destination { root, root_path: path.to_owned(), cached: None })
    }

    /// Where `path` (clean, relative) is on the host, for error messages and
    /// for the few calls that have no `*at` form.
    pub(crate) fn host_path(&self, path: &[u8]) -> PathBuf {
        self.root_path.join(OsStr::from_bytes(path))
    }

    /// Opens the directory `dir` (clean, relative; empty for the root).
    /// Missing components are created (0o755) when `create`, otherwise the
    /// answer is `None`. A component that is a symlink or not a directory is
    /// an error naming `entry`.
    pub(crate) fn dir(
        &mut self,
        dir: &[u8],
        entry: &Path,
        create: bool,
    ) -> Result<Option<OwnedFd>, LayerError> {
        if let Some((cached_dir, fd)) = &self.cached
            && cached_dir == dir
        {
            return Ok(Some(self.dup(fd, dir)?));
        }
        let mut fd = self.dup(&self.root, b"")?;
        if !dir.is_empty() {
            let mut walked = 0;
            for component in dir.split(|&b| b == b'/') {
                let prefix = &dir[..walked + component.len()];
                walked += component.len() + 1;
                let name = OsStr::from_bytes(component);
                fd = match open_dir(&fd, name) {
                    Ok(next) => next,
                    Err(Errno::NOENT) if create => {
                        match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => return Err(self.fs_error(prefix, e)),
                        }
                        open_dir(&fd, name).map_err(|e| self.explain(&fd, prefix, entry, e))?
                    }
                    Err(Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(self.explain(&fd, prefix, entry, e)),
                };
            }
        }
        self.cached = Some((dir.to_vec(), self.dup(&fd, dir)?));
        Ok(Some(fd))
    }

    /// Must be called after removing any directory: the cached one may have
    /// been inside it.
    pub(crate) fn forget_dirs(&mut self) {
        self.cached = None;
    }

    pub(crate) fn fs_error(&self, path: &[u8], e: Errno) -> LayerError {
        LayerError::Filesystem { path: self.host_path(path), source: e.into() }
    }

    fn dup(&self, fd: &OwnedFd, path: &[u8]) -> Result<OwnedFd, LayerError> {
        fd.try_clone().map_err(|source| LayerError::Filesystem { path: self.host_path(path), source })
    }

    /// Turns a failure to open `prefix` as a directory into the error that
    /// says why: a symlink, another kind of file, or a plain I/O error.
    fn explain(&self, parent: &OwnedFd, prefix: &[u8], entry: &Path, e: Errno) -> LayerError {
        if !matches!(e, Errno::NOTDIR | Errno::LOOP) {
            return self.fs_error(prefix, e);
        }
        let name = prefix.rsplit(|&b| b == b'/').next().unwrap_or(prefix);
        let prefix_path = PathBuf::from(OsStr::from_bytes(prefix));
        match file_type_at(parent, OsStr::from_bytes(name)) {
            Ok(Some(FileType::Symlink)) => {
                LayerError::ThroughSymlink { entry: entry.to_owned(), symlink: prefix_path }
            }
            Ok(_) => LayerError::NotADirectory { entry: entry.to_owned(), parent: prefix_path },
            Err(e) => self.fs_error(prefix, e),
        }
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens the directory `name` in `parent`, failing on a symlink.
pub(crate) fn open_dir(parent: impl AsFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(parent, name, dir_flags(), Mode::empty())
}

/// The type of `name` in `parent` (not following a symlink), `None` if absent.
pub(crate) fn file_type_at(parent: impl AsFd, name: &OsStr) -> rustix::io::Result<Option<FileType>> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The names in the directory `dir`, without `.` and `..`.
pub(crate) fn list_dir(dir: impl AsFd) -> rustix::io::Result<Vec<(OsString, FileType)>> {
    let mut names = Vec::new();
    for item in rustix::fs::Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((OsStr::from_bytes(name).to_owned(), item.file_type()));
        }
    }
    Ok(names)
}

/// Removes `name` from `parent` and, if it is a directory, everything under
/// it; symlinks are removed, never followed. Iterative, so a hostile deep
/// tree cannot overflow the stack.
pub(crate) fn remove_all(parent: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    match file_type_at(parent, name)? {
        None => return Ok(()),
        Some(FileType::Directory) => {}
        Some(_) => return rustix::fs::unlinkat(parent, name, AtFlags::empty()),
    }
    // Each level holds the open directory and its name in the level above.
    let mut levels: Vec<(OwnedFd, OsString)> = vec![(open_dir(parent, name)?, name.to_owned())];
    while let Some((dir, _)) = levels.last() {
        let mut subdir = None;
        let mut removed_any = false;
        for (child, file_type) in list_dir(dir)? {
            let is_dir = match file_type {
                FileType::Directory => true,
                FileType::Unknown => file_type_at(dir, &child)? == Some(FileType::Directory),
                _ => false,
            };
            if is_dir {
                subdir = Some(child);
                break;
            }
            rustix::fs::unlinkat(dir, &child, AtFlags::empty())?;
            removed_any = true;
        }
        if let Some(child) = subdir {
            let fd = open_dir(dir, &child)?;
            levels.push((fd, child));
        } else if !removed_any {
            let Some((_, emptied)) = levels.pop() else {
                break;
            };
            let above = match levels.last() {
                Some((fd, _)) => fd.as_fd(),
                None => parent,
            };
            rustix::fs::unlinkat(above, &emptied, AtFlags::REMOVEDIR)?;
        }
        // Otherwise list again: unlinking while reading a directory may
        // make the listing skip names.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn remove_all_removes_a_tree_without_following_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "x").unwrap();
        let dest = tempfile::tempdir().unwrap();
        let tree = dest.path().join("t");
        fs::create_dir_all(tree.join("a/b/c")).unwrap();
        fs::write(tree.join("a/b/c/f"), "x").unwrap();
        fs::write(tree.join("a/g"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("a/out")).unwrap();
        let root = rustix::fs::open(dest.path(), dir_flags(), Mode::empty()).unwrap();
        remove_all(root.as_fd(), OsStr::new("t")).unwrap();
        assert!(!tree.exists());
        assert!(outside.path().join("keep").exists());
    }

    #[test]
    fn remove_all_of_a_missing_name_is_not_an_error() {
        let dest = tempfile::tempdir().unwrap();
        let root = rustix::fs::open(dest.path(), dir_flags(), Mode::empty()).unwrap();
        remove_all(root.as_fd(), OsStr::new("nothing")).unwrap();
    }

    #[test]
    fn dir_refuses_to_walk_through_a_symlink() {
        let outside = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("link")).unwrap();
        let mut destination = Destination::open(dest.path()).unwrap();
        let err = destination.dir(b"link/sub", Path::new("link/sub/file"), true).unwrap_err();
        assert!(
            matches!(&err, LayerError::ThroughSymlink { symlink, .. } if symlink == Path::new("link")),
            "{err}"
        );
        assert!(!outside.path().join("sub").exists());
    }

    #[test]
    fn dir_creates_missing_components_only_when_asked() {
        let dest = tempfile::tempdir().unwrap();
        let mut destination = Destination::open(dest.path()).unwrap();
        assert!(destination.dir(b"a/b", Path::new("a/b/f"), false).unwrap().is_none());
        assert!(destination.dir(b"a/b", Path::new("a/b/f"), true).unwrap().is_some());
        assert!(dest.path().join("a/b").is_dir());
    }
}
