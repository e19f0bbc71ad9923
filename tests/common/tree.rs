//! Building small context trees on disk.

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Writes `content` at `root/rel`, creating parent directories.
pub fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

pub fn symlink(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

pub fn chmod(root: &Path, rel: &str, mode: u32) {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
}

pub fn set_mtime(root: &Path, rel: &str, mtime: SystemTime) {
    let file = File::options().write(true).open(root.join(rel)).unwrap();
    file.set_times(FileTimes::new().set_modified(mtime)).unwrap();
}

pub fn mtime(root: &Path, rel: &str) -> SystemTime {
    fs::metadata(root.join(rel)).unwrap().modified().unwrap()
}

/// Lets the clock move past the timestamps just written, so a scan started
/// now is strictly later than them.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(20));
}
