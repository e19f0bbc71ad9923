//! Working roots: a writable root on top of unpacked layers, in `snapshots/work/<id>/`.
//!
//! - Guarded by `snapshots/work/<id>.lock`, made and locked before the
//!   directory and removed after it: a directory whose lock nobody holds (or
//!   that has none) belongs to a process that died.
//! - Making a lock file and locking it are two steps; `snapshots/work.lock` is
//!   held shared across them and exclusive by a sweep, so a sweep never
//!   mistakes a lock file just made, not yet locked, for a dead process's.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{io, thread};

use super::lower::{self, RecordedState};
use super::recorded;
use super::{SnapshotError, Snapshots, Snapshotter, diff, io_error};
use crate::idmap::IdMap;
use crate::layer::{Compression, LayerSummary};

/// What the sandbox mounts as the root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootDescription {
    /// An overlay mount.
    Overlay {
        /// The unpacked layer dirs, top first, as `lowerdir=` lists them.
        lower: Vec<PathBuf>,
        /// Where writes land: empty when the working root is made, then the
        /// changes a diff reads.
        upper: PathBuf,
        /// Overlayfs's work dir, empty, on the same filesystem as `upper`.
        work: PathBuf,
    },
    /// A plain directory, bind-mounted.
    Dir(PathBuf),
}

impl RootDescription {
    /// The `mount -t overlay` data for this root, or `None` for a plain
    /// directory or when a path holds a `,` or `:` (which the option
    /// string cannot carry; `fsconfig` with `lowerdir+` can). Redirects
    /// and metacopy stay off (`redirect_dir=nofollow`, which `userxattr`
    /// requires, neither makes nor follows them): a diff reads the upper
    /// dir as a plain tree, and with either on it would hold placeholders
    /// instead of files. `rootless` adds `userxattr`, the mount an
    /// unprivileged user namespace can make, which reads `user.overlay.*`
    /// markers.
    pub fn overlay_options(&self, rootless: bool) -> Option<String> {
        let RootDescription::Overlay { lower, upper, work } = self else { return None };
        let paths = lower.iter().chain([upper, work]);
        if paths.clone().any(|p| p.as_os_str().as_encoded_bytes().iter().any(|b| matches!(b, b',' | b':'))) {
            return None;
        }
        let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        let mut options = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=nofollow,metacopy=off,index=off",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        if rootless {
            options.push_str(",userxattr");
        }
        Some(options)
    }
}

enum Kind {
    Overlay { lowers: Vec<PathBuf>, upper: PathBuf, work: PathBuf },
    Copy { root: PathBuf, state: RecordedState },
}

/// A writable root filesystem on top of unpacked layers. Released (its
/// directory removed) by [`WorkingRoot::release`] or on drop.
pub struct WorkingRoot {
    dir: PathBuf,
    lock_path: PathBuf,
    lock: Option<File>,
    kind: Kind,
    id_map: Option<IdMap>,
}

static WORKING_COUNTER: AtomicU64 = AtomicU64::new(0);

impl WorkingRoot {
    pub(super) fn create(snapshots: &Snapshots, lowers: Vec<PathBuf>) -> Result<WorkingRoot, SnapshotError> {
        let work_dir = snapshots.dir.join("work");
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let id =
            format!("{}-{}-{nanos:x}", std::process::id(), WORKING_COUNTER.fetch_add(1, Ordering::Relaxed));
        let lock_path = work_dir.join(format!("{id}.lock"));
        let lock = {
            let sweep = sweep_lock(&work_dir)?;
            sweep.lock_shared().map_err(io_error(&work_dir))?;
            let lock = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&lock_path)
                .map_err(io_error(&lock_path))?;
            lock.lock().map_err(io_error(&lock_path))?;
            lock
        };
        let dir = work_dir.join(&id);
        // Until `kind` is known, drop cleans up through a placeholder.
        let mut root = WorkingRoot {
            dir: dir.clone(),
            lock_path,
            lock: Some(lock),
            kind: Kind::Copy { root: dir.join("root"), state: RecordedState::new() },
            id_map: snapshots.id_map.clone(),
        };
        fs::create_dir(&dir).map_err(io_error(&dir))?;
        root.kind = match snapshots.snapshotter {
            Snapshotter::Overlay => {
                let (upper, work) = (dir.join("upper"), dir.join("work"));
                for path in [&upper, &work] {
                    fs::create_dir(path).map_err(io_error(path))?;
                }
                let mut lowers = lowers;
                if lowers.is_empty() {
                    // overlayfs needs a lower dir; `FROM scratch` has none.
                    let empty = dir.join("empty");
                    fs::create_dir(&empty).map_err(io_error(&empty))?;
                    lowers.push(empty);
                }
                Kind::Overlay { lowers, upper, work }
            }
            Snapshotter::Copy => {
                let copy = dir.join("root");
                fs::create_dir(&copy).map_err(io_error(&copy))?;
                let state = if !crate::idmap::rootless() {
                    copy_and_record(&dir, &lowers, &copy)?
                } else {
                    copy_as_namespace_root(&dir, &lowers, &copy)?
                };
                Kind::Copy { root: copy, state }
            }
        };
        Ok(root)
    }

    /// What the sandbox mounts as `/`.
    pub fn rootfs(&self) -> RootDescription {
        match &self.kind {
            Kind::Overlay { lowers, upper, work } => RootDescription::Overlay {
                lower: lowers.iter().rev().cloned().collect(),
                upper: upper.clone(),
                work: work.clone(),
            },
            Kind::Copy { root, .. } => RootDescription::Dir(root.clone()),
        }
    }

    /// A directory where files may be written without a sandbox (COPY
    /// steps). For overlay it is the upper dir: adding or replacing files
    /// there is a valid change, but a directory made there that exists in
    /// a lower layer merges with it (its metadata wins), and deleting
    /// needs whiteouts, so use it only to add. For copy it is the root.
    pub fn upper_dir(&self) -> &Path {
        match &self.kind {
            Kind::Overlay { upper, .. } => upper,
            Kind::Copy { root, .. } => root,
        }
    }

    /// The layer dirs beneath this root, bottom first (an empty placeholder
    /// dir when there are no layers); `None` for a copy, which has none.
    pub fn lowers(&self) -> Option<&[PathBuf]> {
        match &self.kind {
            Kind::Overlay { lowers, .. } => Some(lowers),
            Kind::Copy { .. } => None,
        }
    }

    /// Writes the changes made to this root as a layer into `out`.
    /// `ignore` lists paths (relative to the root) left out with all they
    /// hold: mount points the sandbox made. See the module documentation
    /// for what a change is.
    pub fn diff(
        &self,
        out: impl Write,
        compression: Compression,
        ignore: &[PathBuf],
    ) -> Result<LayerSummary, SnapshotError> {
        if !crate::idmap::rootless() {
            return self.diff_here(out, compression, ignore, self.id_map.as_ref());
        }
        self.diff_as_namespace_root(out, compression, ignore)
    }

    /// The diff in this process; `id_map` translates on-disk owners.
    fn diff_here(
        &self,
        out: impl Write,
        compression: Compression,
        ignore: &[PathBuf],
        id_map: Option<&IdMap>,
    ) -> Result<LayerSummary, SnapshotError> {
        let ignore = diff::Ignore::new(ignore);
        let changes = match &self.kind {
            Kind::Overlay { upper, .. } => diff::upper_changes(upper, &ignore)?,
            Kind::Copy { root, state } => diff::copy_changes(root, state, &ignore)?,
        };
        diff::write_layer(changes, out, compression, id_map)
    }

    /// Rootless, a process may have left files owned by subordinate ids
    /// that only the root of its user namespace can read: the diff runs
    /// there, in a child that streams the layer back and then its summary.
    /// Inside, owners already read as the container's ids (and the copy
    /// snapshotter recorded them there too).
    fn diff_as_namespace_root(
        &self,
        mut out: impl Write,
        compression: Compression,
        ignore: &[PathBuf],
    ) -> Result<LayerSummary, SnapshotError> {
        let reply = super::as_namespace_root(
            |pipe| Ok(self.diff_here(pipe, compression, ignore, None)?.to_line().into_bytes()),
            |chunk| out.write_all(chunk),
        )?;
        LayerSummary::from_line(&reply, compression).ok_or_else(|| {
            SnapshotError::Helper(format!(
                "the diff helper's reply is garbled: {:?}",
                String::from_utf8_lossy(&reply)
            ))
        })
    }

    /// Removes the working dir.
    pub fn release(mut self) -> Result<(), SnapshotError> {
        self.remove()
    }

    fn remove(&mut self) -> Result<(), SnapshotError> {
        let Some(lock) = self.lock.take() else { return Ok(()) };
        remove_tree(&self.dir).map_err(io_error(&self.dir))?;
        fs::remove_file(&self.lock_path).map_err(io_error(&self.lock_path))?;
        drop(lock);
        Ok(())
    }
}

impl Drop for WorkingRoot {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Copies the merged `lowers` into `copy` and records what it copied.
fn copy_and_record(dir: &Path, lowers: &[PathBuf], copy: &Path) -> Result<RecordedState, SnapshotError> {
    let state = lower::copy_merged(lowers, copy).map_err(io_error(copy))?;
    wait_for_clock(dir, &state)?;
    Ok(state)
}

/// Rootless, the layer dirs hold files owned by subordinate ids: the copy
/// (which keeps owners) is made by the root of a user namespace, and the
/// state it records comes back as bytes. Owners are recorded as that
/// namespace shows them, which is how the diff, made there too, sees them.
/// The state is the helper's reply.
fn copy_as_namespace_root(
    dir: &Path,
    lowers: &[PathBuf],
    copy: &Path,
) -> Result<RecordedState, SnapshotError> {
    let state =
        super::as_namespace_root(|_| Ok(recorded::encode(&copy_and_record(dir, lowers, copy)?)), |_| Ok(()))?;
    recorded::decode(&state).ok_or_else(|| SnapshotError::Helper("the copy helper's state is garbled".into()))
}

/// Returns once the filesystem clock has moved past every recorded ctime,
/// so any later change to a copied file gets a ctime different from the
/// one recorded: a change of content that keeps size and mtime (`touch
/// -r`) is caught by the ctime without reading every file.
fn wait_for_clock(dir: &Path, state: &RecordedState) -> Result<(), SnapshotError> {
    let latest = state.values().map(|r| r.ctime).max().unwrap_or((0, 0));
    let probe = dir.join("clock");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        fs::write(&probe, b"").map_err(io_error(&probe))?;
        let metadata = fs::metadata(&probe).map_err(io_error(&probe))?;
        if (metadata.ctime(), metadata.ctime_nsec()) > latest || Instant::now() > deadline {
            return fs::remove_file(&probe).map_err(io_error(&probe));
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Removes `path` and all it holds, never following symlinks, making
/// unreadable directories readable first (overlayfs leaves `work/work`
/// with mode 000). A missing path is not an error. Rootless, what a
/// sandboxed process left owned by a subordinate id (and so not ours to
/// remove) is removed by the root of a user namespace that maps it.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match remove_own_tree(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && crate::idmap::rootless() => {
            let removed = crate::sandbox::as_namespace_root(
                |_| remove_own_tree(path).map(|_| Vec::new()).map_err(|e| e.to_string()),
                |_| Ok(()),
            );
            match removed {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(message)) => Err(io::Error::new(e.kind(), message)),
                Err(helper) => {
                    Err(io::Error::new(e.kind(), format!("{e} (and as user-namespace root: {helper})")))
                }
            }
        }
        other => other,
    }
}

fn remove_own_tree(path: &Path) -> io::Result<()> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !metadata.is_dir() {
        return fs::remove_file(path);
    }
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
            fs::read_dir(path)?
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        remove_own_tree(&entry?.path())?;
    }
    match fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
            fs::remove_dir(path)
        }
        other => other,
    }
}

/// `snapshots/work.lock`, beside (not in) the dir it guards.
fn sweep_lock(work_dir: &Path) -> Result<File, SnapshotError> {
    let path = work_dir.with_extension("lock");
    OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))
}

/// Removes the working dirs of processes that died. Waits for roots being
/// made (and another sweep) to get out of the way first.
pub(super) fn remove_stale(work_dir: &Path) {
    let Ok(sweep) = sweep_lock(work_dir) else { return };
    if sweep.lock().is_err() {
        return;
    }
    let Ok(entries) = fs::read_dir(work_dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name.strip_suffix(".lock") {
            let Ok(file) = OpenOptions::new().write(true).open(&path) else { continue };
            if file.try_lock().is_ok() {
                let _ = remove_tree(&work_dir.join(id));
                let _ = fs::remove_file(&path);
            }
        } else if !work_dir.join(format!("{name}.lock")).exists() {
            // The lock file goes last: a dir without one was being removed.
            let _ = remove_tree(&path);
        }
    }
}
